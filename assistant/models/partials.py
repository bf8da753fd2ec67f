"""Partial downloads left by earlier runs, grouped into the variants they belong to.

``downloads.pending()`` lists partial files one by one; ``pending_variants`` gathers the parts
of a split GGUF into one ``PendingVariant`` with its bytes done and total, so the Models page
can offer to resume or discard it as one model. Plain functions, run off the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from assistant.models import downloads, hub
from assistant.models.hub import ModelVariant, RemoteFile
from assistant.models.split_files import names_of_parts, split_info, whole_name


@dataclass(frozen=True)
class PendingVariant:
    """A partial download left by an earlier run, grouped into the variant it belongs to."""

    variant: ModelVariant
    done: int
    total: int | None  # None while some split part has not been started (its size is unknown)

    @property
    def key(self) -> tuple[str, str]:
        return self.variant.repo, self.variant.filename


def pending_variants() -> list[PendingVariant]:
    """downloads.pending() grouped into variants: the parts of a split GGUF become one."""
    groups: dict[tuple[str, str, int], dict[str, downloads.PartialDownload]] = {}
    for p in downloads.pending():
        split = split_info(p.filename)
        count = split[1] if split else 1
        groups.setdefault((p.repo, whole_name(p.filename), count), {})[p.filename] = p
    found = []
    for (repo, base, count), parts in groups.items():
        names = names_of_parts(base, count)
        files = tuple(RemoteFile(n, parts[n].size if n in parts else None, None) for n in names)
        quant = hub.quantization_from_filename(names[0]) or Path(names[0]).stem
        variant = ModelVariant(repo=repo, quantization=quant, files=files)
        total = variant.size
        found.append(PendingVariant(variant, sum(p.done for p in parts.values()), total))
    return found


def discard_variant(variant: ModelVariant) -> None:
    for f in variant.files:
        downloads.discard(variant.repo, f.filename)
