"""The Hugging Face Hub, as far as Assistant needs it: search GGUF repos, list a repo's variants.

Everything goes through huggingface_hub with the endpoint and token read at call time:
huggingface_hub reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` once at import, but tests (and a
user who changes settings) point them elsewhere later. Errors leave this module as
``DownloadError`` subclasses with a sentence fit for the user.

Over 400 lines: the Hub's search, a repo's files grouped into variants (split files,
quantizations) and their headers read over HTTP Range, all behind one error translation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from assistant.errors import DownloadError, GatedRepoError, NetworkError, RepoNotFound
from assistant.models.split_files import split_info, whole_name

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
SORTS = {"downloads": "downloads", "likes": "likes", "recency": "last_modified"}
# Metadata calls answer in well under a second; a hung proxy must not hang the UI's task forever.
API_TIMEOUT_S = 20.0

# Quantization names as they appear in file names: Q4_K_M, IQ4_XS, Q4_0_4_4, Q8_0, F16, BF16,
# MXFP4, TQ1_0, and unsloth's "UD-Q4_K_XL". Matched as a whole dash/dot/underscore-separated word.
_QUANT_RE = re.compile(
    r"(?:^|[-_.\s])((?:UD-)?(?:I?Q\d(?:_[0-9]+)?(?:_[KSML0-9]+)*(?:_XXS|_XS|_XL|_NL)?"
    r"|TQ\d_\d|BF16|FP16|F16|F32|FP32|MXFP4(?:_MOE)?))(?=$|[-_.\s])",
    re.IGNORECASE,
)


# ---------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class RemoteFile:
    """One file on the Hub: a whole GGUF or one part of a split one."""

    filename: str  # path inside the repo
    size: int | None
    sha256: str | None  # the LFS oid; None when unknown (offline catalog, non-LFS file)


@dataclass(frozen=True)
class ModelVariant:
    """One quantization of a model: a single GGUF, or every part of a split GGUF in order."""

    repo: str
    quantization: str
    files: tuple[RemoteFile, ...]
    # True when the sizes are the catalog's estimates rather than what the Hub reported.
    approx: bool = False

    @property
    def filename(self) -> str:
        """The file llama.cpp is given (the first part of a split model)."""
        return self.files[0].filename

    @property
    def filenames(self) -> tuple[str, ...]:
        return tuple(f.filename for f in self.files)

    @property
    def size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    @property
    def sha256(self) -> str | None:
        return self.files[0].sha256 if len(self.files) == 1 else None

    @property
    def split_parts(self) -> int:
        return len(self.files)

    @property
    def is_split(self) -> bool:
        return len(self.files) > 1

    @property
    def spec(self) -> str:
        """How the CLI names it: ``owner/repo:Q4_K_M``."""
        return f"{self.repo}:{self.quantization}"


@dataclass(frozen=True)
class RepoSummary:
    """A search hit."""

    repo: str
    downloads: int | None
    likes: int | None
    last_modified: datetime | None
    gated: bool
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class RepoView:
    """Everything the Models page shows for one repo."""

    repo: str
    commit: str | None
    gated: bool
    license: str | None
    downloads: int | None
    likes: int | None
    architecture: str | None
    context_length: int | None
    variants: tuple[ModelVariant, ...]
    # GGUF files that are not chat models on their own (vision projectors).
    extra_files: tuple[RemoteFile, ...] = field(default=())


# ---------------------------------------------------------------------------------------------
# Configuration read at call time


def endpoint() -> str:
    """The Hub to talk to: ``HF_ENDPOINT`` now, not when huggingface_hub was imported."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def check_online() -> None:
    if is_offline():
        raise NetworkError(
            "Hugging Face access is turned off (HF_HUB_OFFLINE is set). "
            "Unset it to search for and download models."
        )


def check_reachable(timeout: float = 4.0) -> None:
    """Fail in seconds when the Hub's host refuses or ignores connections.

    huggingface_hub's paginated listings retry a dead connection five times with backoff (about
    23 s here); one TCP connect tells the user at once. Skipped behind a proxy, where the proxy,
    not the Hub, answers the connect.
    """
    if any(
        os.environ.get(v)
        for v in (
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
            "HTTP_PROXY",
            "http_proxy",
        )
    ):
        return
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        raise NetworkError(
            f"Could not reach Hugging Face at {endpoint()}: check your internet connection "
            f"or proxy ({_short(exc)})."
        ) from exc


def token() -> str | None:
    """``HF_TOKEN``, else a token saved in the settings; None lets huggingface_hub use its login."""
    env = os.environ.get("HF_TOKEN")
    if env:
        return env.strip()
    try:
        from assistant.settings import Settings

        settings = Settings.load()
    except Exception:  # a broken settings file must not break downloads
        return None
    value = settings.hf_token
    return value.strip() if isinstance(value, str) and value.strip() else None


def api():  # -> huggingface_hub.HfApi (imported lazily: it costs ~0.3 s at startup)
    from huggingface_hub import HfApi

    from assistant import __version__

    return HfApi(
        endpoint=endpoint(),
        token=token(),
        library_name="assistant",
        library_version=__version__,
    )


def file_url(repo: str, filename: str, revision: str = "main") -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(repo, filename, revision=revision, endpoint=endpoint())


# ---------------------------------------------------------------------------------------------
# Error translation


@contextlib.contextmanager
def translate_errors(repo: str, filename: str | None = None) -> Iterator[None]:
    """Turn huggingface_hub / httpx errors into our DownloadError family."""
    from huggingface_hub import errors as hf_errors

    try:
        import httpx2 as httpx  # what huggingface_hub 2.x is built on
    except ImportError:  # pragma: no cover - huggingface_hub 1.x
        import httpx  # type: ignore[no-redef]

    what = f"{repo}/{filename}" if filename else repo
    try:
        yield
    except DownloadError:
        raise
    except hf_errors.OfflineModeIsEnabled as exc:
        raise NetworkError(
            "Hugging Face access is turned off (HF_HUB_OFFLINE is set). "
            "Unset it to search for and download models."
        ) from exc
    except hf_errors.GatedRepoError as exc:  # before RepositoryNotFoundError: it subclasses it
        raise gated_error(repo) from exc
    except hf_errors.RepositoryNotFoundError as exc:
        status = exc.response.status_code if exc.response is not None else None
        hint = " (or it is private: add a Hugging Face token)" if status == 401 else ""
        raise RepoNotFound(f"The repository {repo} was not found on Hugging Face{hint}.") from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise RepoNotFound(f"{repo} has no such revision.") from exc
    except hf_errors.EntryNotFoundError as exc:
        raise RepoNotFound(f"{what} was not found on Hugging Face.") from exc
    except hf_errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 403:
            raise gated_error(repo) from exc
        if status == 404:
            raise RepoNotFound(f"{what} was not found on Hugging Face.") from exc
        if status == 429:
            raise NetworkError(
                "Hugging Face is rate-limiting requests; wait a minute and try again."
            ) from exc
        raise NetworkError(
            f"Hugging Face answered with an error (HTTP {status}) for {what}."
        ) from exc
    except httpx.TimeoutException as exc:
        raise NetworkError(f"Hugging Face did not answer in time ({endpoint()}).") from exc
    except (httpx.TransportError, OSError) as exc:
        raise NetworkError(
            f"Could not reach Hugging Face at {endpoint()}: check your internet connection "
            f"or proxy ({_short(exc)})."
        ) from exc


def gated_error(repo: str) -> GatedRepoError:
    return GatedRepoError(
        f"{repo} is gated: accept its license on huggingface.co and add a Hugging Face token."
    )


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# File names -> variants


def quantization_from_filename(filename: str) -> str | None:
    """``Qwen2.5-7B-Instruct-Q4_K_M-00001-of-00002.gguf`` -> ``Q4_K_M``."""
    base = filename.rsplit("/", 1)[-1]
    base = re.sub(r"\.gguf$", "", whole_name(base), flags=re.IGNORECASE)
    matches = _QUANT_RE.findall(base)
    if not matches:
        # Some repos keep each quantization in a folder named after it.
        folder = filename.rsplit("/", 1)[0] if "/" in filename else ""
        matches = _QUANT_RE.findall(folder.rsplit("/", 1)[-1]) if folder else []
    if not matches:
        return None
    quant = matches[-1].upper()
    return quant.replace("FP16", "F16").replace("FP32", "F32")


def is_projector(filename: str) -> bool:
    base = filename.rsplit("/", 1)[-1].lower()
    return base.startswith("mmproj") or "-mmproj" in base or ".mmproj" in base


def group_variants(
    repo: str, files: Iterable[RemoteFile]
) -> tuple[list[ModelVariant], list[RemoteFile]]:
    """Group a repo's GGUF files into variants (split parts become one); projectors aside."""
    groups: dict[str, list[tuple[int, int, RemoteFile]]] = {}
    extras: list[RemoteFile] = []
    for f in files:
        if not f.filename.lower().endswith(".gguf"):
            continue
        if is_projector(f.filename):
            extras.append(f)
            continue
        split = split_info(f.filename)
        key = whole_name(f.filename)
        index, count = split or (1, 1)
        groups.setdefault(key, []).append((index, count, f))

    variants = []
    for key, parts in groups.items():
        parts.sort(key=lambda p: p[0])
        count = parts[0][1]
        if [p[0] for p in parts] != list(range(1, count + 1)):
            log.info("Skipping %s in %s: split parts are missing", key, repo)
            continue
        quant = quantization_from_filename(key) or key.rsplit("/", 1)[-1].removesuffix(".gguf")
        variants.append(
            ModelVariant(repo=repo, quantization=quant, files=tuple(p[2] for p in parts))
        )
    variants.sort(key=lambda v: (quant_rank(v.quantization), v.filename))
    return variants, extras


# Rough bits per weight: sorts variants from small to large and ranks their quality.
_BPW = {
    "TQ1_0": 1.7,
    "IQ1_S": 1.6,
    "IQ1_M": 1.8,
    "TQ2_0": 2.1,
    "IQ2_XXS": 2.1,
    "IQ2_XS": 2.3,
    "IQ2_S": 2.5,
    "IQ2_M": 2.7,
    "Q2_K": 2.6,
    "Q2_K_S": 2.6,
    "Q2_K_L": 3.0,
    "IQ3_XXS": 3.1,
    "IQ3_XS": 3.3,
    "IQ3_S": 3.4,
    "IQ3_M": 3.7,
    "Q3_K_S": 3.5,
    "Q3_K_M": 3.9,
    "Q3_K_L": 4.3,
    "Q3_K_XL": 4.4,
    "IQ4_XS": 4.3,
    "IQ4_NL": 4.5,
    "Q4_0": 4.5,
    "Q4_0_4_4": 4.5,
    "Q4_0_4_8": 4.5,
    "Q4_0_8_8": 4.5,
    "Q4_1": 5.0,
    "Q4_K_S": 4.6,
    "Q4_K_M": 4.85,
    "Q4_K_L": 5.0,
    "Q4_K_XL": 5.0,
    "MXFP4": 4.25,
    "MXFP4_MOE": 4.25,
    "Q5_0": 5.5,
    "Q5_1": 6.0,
    "Q5_K_S": 5.5,
    "Q5_K_M": 5.7,
    "Q5_K_L": 5.9,
    "Q5_K_XL": 5.9,
    "Q6_K": 6.6,
    "Q6_K_L": 6.8,
    "Q6_K_XL": 6.9,
    "Q8_0": 8.5,
    "Q8_K_XL": 9.0,
    "F16": 16.0,
    "BF16": 16.0,
    "F32": 32.0,
}


def quant_rank(quantization: str) -> float:
    """Approximate bits per weight (higher is larger and better); unknown names sort last."""
    return _BPW.get(quantization.upper().removeprefix("UD-"), 99.0)


# ---------------------------------------------------------------------------------------------
# Search and repo view


def search(query: str, *, sort: str = "downloads", limit: int = 20) -> list[RepoSummary]:
    """GGUF text-generation repos matching ``query``: most downloaded, liked or recent first."""
    check_online()
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {sorted(SORTS)}")
    limit = max(1, min(int(limit), 100))
    check_reachable()
    with translate_errors(query or "search"):
        items = api().list_models(
            search=query or None,
            filter="gguf",
            pipeline_tag="text-generation",
            sort=SORTS[sort],  # type: ignore[arg-type]
            limit=limit,
            expand=["downloads", "likes", "lastModified", "gated", "tags"],
        )
        results = []
        for m in items:
            results.append(
                RepoSummary(
                    repo=m.id,
                    downloads=m.downloads,
                    likes=m.likes,
                    last_modified=m.last_modified,
                    gated=bool(m.gated),
                    tags=tuple(m.tags or ()),
                )
            )
    return results


def repo_view(repo: str, *, revision: str | None = None) -> RepoView:
    """Every GGUF in ``repo`` grouped by quantization, with sizes and LFS sha256."""
    check_online()
    with translate_errors(repo):
        info = api().model_info(repo, revision=revision, files_metadata=True, timeout=API_TIMEOUT_S)
        siblings = info.siblings or []
        files = [
            RemoteFile(
                filename=s.rfilename,
                size=(s.lfs.size if s.lfs else s.size),
                sha256=(s.lfs.sha256 if s.lfs else None),
            )
            for s in siblings
            if s.rfilename.lower().endswith(".gguf")
        ]
        if any(f.size is None for f in files):
            # Older servers leave sizes out of model_info: the tree listing always has them.
            files = list_gguf_files(repo, revision=revision or info.sha)
    variants, extras = group_variants(repo, files)
    card = info.card_data
    license_ = getattr(card, "license", None) if card is not None else None
    if license_ is None:
        license_ = next(
            (t.split(":", 1)[1] for t in info.tags or () if t.startswith("license:")), None
        )
    gguf = info.gguf if isinstance(info.gguf, dict) else {}
    return RepoView(
        repo=info.id,
        commit=info.sha,
        gated=bool(info.gated),
        license=license_,
        downloads=info.downloads,
        likes=info.likes,
        architecture=gguf.get("architecture"),
        context_length=gguf.get("context_length"),
        variants=tuple(variants),
        extra_files=tuple(extras),
    )


def list_gguf_files(repo: str, *, revision: str | None = None) -> list[RemoteFile]:
    """The repo's GGUF files from the tree listing (sizes and LFS sha256 always present)."""
    from huggingface_hub.hf_api import RepoFile

    check_online()
    check_reachable()
    with translate_errors(repo):
        entries = api().list_repo_tree(repo, recursive=True, revision=revision)
        return [
            RemoteFile(
                filename=e.path,
                size=e.lfs.size if e.lfs else e.size,
                sha256=e.lfs.sha256 if e.lfs else None,
            )
            for e in entries
            if isinstance(e, RepoFile) and e.path.lower().endswith(".gguf")
        ]


def find_variant(
    view_or_variants: RepoView | Iterable[ModelVariant], selector: str | None
) -> ModelVariant:
    """Pick a variant by quantization (``Q4_K_M``) or file name; None: Q4_K_M or the nearest."""
    variants = list(
        view_or_variants.variants if isinstance(view_or_variants, RepoView) else view_or_variants
    )
    repo = variants[0].repo if variants else "the repository"
    if not variants:
        raise RepoNotFound(f"{repo} has no GGUF model files.")
    if selector is None:
        return min(variants, key=lambda v: abs(quant_rank(v.quantization) - quant_rank("Q4_K_M")))
    wanted = selector.strip()
    for v in variants:
        if wanted in v.filenames or any(f.rsplit("/", 1)[-1] == wanted for f in v.filenames):
            return v
    for v in variants:
        if v.quantization.upper() == wanted.upper():
            return v
    names = ", ".join(v.quantization for v in variants)
    raise RepoNotFound(f"{repo} has no variant {wanted!r} (it has: {names}).")
