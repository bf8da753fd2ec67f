"""Curated models that work offline (shipped catalog.json), refreshable from the Hub on request."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

from assistant.errors import RepoNotFound
from assistant.models import hub
from assistant.models.hub import ModelVariant, RemoteFile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchHint:
    """Shape numbers for a fit estimate before any byte of the model is downloaded."""

    architecture: str
    n_layers: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    n_embd: int
    sliding_window: int | None = None
    # Every swa_pattern-th layer attends globally; the others see only sliding_window tokens.
    swa_pattern: int | None = None


@dataclass(frozen=True)
class CatalogEntry:
    repo: str
    name: str
    params: str  # "7.6B": parameters, as model cards write them
    license: str
    context_length: int
    description: str
    variants: tuple[ModelVariant, ...]
    gated: bool = False
    tags: tuple[str, ...] = ()
    arch: ArchHint | None = None
    # A mixture of experts reads only its active parameters for each token ("3.3B").
    active_params: str = ""

    def variant(self, quantization: str | None = None) -> ModelVariant:
        return hub.find_variant(self.variants, quantization)


def entry_from_json(raw: dict) -> CatalogEntry:
    """One catalog entry as data/*.json writes it."""
    repo = raw["repo"]
    variants = tuple(
        ModelVariant(
            repo=repo,
            quantization=v["quantization"],
            files=tuple(
                RemoteFile(f["filename"], f.get("size"), f.get("sha256")) for f in v["files"]
            ),
            approx=bool(v.get("approx", False)),
        )
        for v in raw["variants"]
    )
    arch = ArchHint(**raw["arch"]) if raw.get("arch") else None
    return CatalogEntry(
        repo=repo,
        name=raw["name"],
        params=raw.get("params", ""),
        license=raw.get("license", "unknown"),
        context_length=int(raw.get("context_length", 0)),
        description=raw.get("description", ""),
        variants=variants,
        gated=bool(raw.get("gated", False)),
        tags=tuple(raw.get("tags", ())),
        arch=arch,
        active_params=raw.get("active_params", ""),
    )


@lru_cache(maxsize=1)
def _shipped() -> tuple[CatalogEntry, ...]:
    text = resources.files("assistant").joinpath("data/catalog.json").read_text(encoding="utf-8")
    return tuple(entry_from_json(m) for m in json.loads(text)["models"])


def entries() -> list[CatalogEntry]:
    """The curated models, in catalog order (offline, from package data)."""
    return list(_shipped())


def find(repo: str) -> CatalogEntry | None:
    wanted = repo.strip().lower()
    return next((e for e in _shipped() if e.repo.lower() == wanted), None)


def refresh(repo: str) -> CatalogEntry:
    """Re-read an entry's files, exact sizes and sha256 from the Hub (network; on request only).

    The shipped entry keeps its curated name and description; its variants become what the Hub
    lists now, restricted to the quantizations the catalog offers when the Hub still has them.
    """
    base = find(repo)
    view = hub.repo_view(repo)
    live = list(view.variants)
    if not live:
        raise RepoNotFound(f"{repo} has no GGUF model files any more.")
    if base is None:
        return CatalogEntry(
            repo=view.repo,
            name=view.repo.split("/", 1)[-1].removesuffix("-GGUF"),
            params="",
            license=view.license or "unknown",
            context_length=view.context_length or 0,
            description="",
            variants=tuple(live),
            gated=view.gated,
        )
    curated = {v.quantization.upper() for v in base.variants}
    chosen = [v for v in live if v.quantization.upper() in curated] or live
    return replace(
        base,
        variants=tuple(chosen),
        gated=view.gated,
        license=view.license or base.license,
        context_length=view.context_length or base.context_length,
    )
