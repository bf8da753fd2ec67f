"""Fit estimates for all the variants of one repo, as the Models page shows them.

``FitReport`` holds, per variant, whether it fits this machine, and which one to recommend;
``estimate_repo`` builds one from a Hub repo (reading one GGUF header over the network) and
``estimate_catalog`` from a catalog entry's shipped shape numbers (offline). Plain functions,
run off the GUI thread by the Models page's controller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from assistant.models import downloads
from assistant.models.hub import ModelVariant, RepoView

if TYPE_CHECKING:
    from assistant.hardware.machine import Hardware
    from assistant.models.catalog import CatalogEntry
    from assistant.models.fit import FitEstimate, ModelShape
    from assistant.models.gguf_info import GGUFInfo


@dataclass(frozen=True)
class FitReport:
    """Fit estimates for the variants of one repo (keyed by ``variant.filename``)."""

    repo: str
    estimates: dict[str, FitEstimate | None] = field(default_factory=dict)  # by filename
    recommended: str | None = None  # filename of the recommended variant
    hardware: Hardware | None = None  # what it was estimated for
    n_ctx: int = 0
    error: str | None = None


def _hardware(hw: Hardware | None) -> Hardware:
    if hw is not None:
        return hw
    from assistant.hardware import machine

    return machine.detect_in_child()


def _report(
    repo: str,
    variants: Iterable[ModelVariant],
    shape: GGUFInfo | ModelShape,
    n_ctx: int,
    hw: Hardware,
) -> FitReport:
    from assistant.models import fit

    estimates = {v: fit.estimate_variant(v, shape, n_ctx, hw) for v in variants}
    best = fit.recommend(estimates)
    return FitReport(
        repo=repo,
        estimates={v.filename: e for v, e in estimates.items()},
        recommended=best.filename if best is not None else None,
        hardware=hw,
        n_ctx=n_ctx,
    )


def estimate_repo(view: RepoView, n_ctx: int, hw: Hardware | None = None) -> FitReport:
    """Read one GGUF header from the Hub (Range request) and estimate every variant from it.

    One header is enough: every quantization in a repo has the same shape; each variant's own
    size stands in for its weights.
    """

    hw = _hardware(hw)
    sized = [v for v in view.variants if v.size]
    if not sized:
        return FitReport(
            view.repo, hardware=hw, n_ctx=n_ctx, error="The Hub did not report file sizes."
        )
    probe = min(sized, key=lambda v: v.size or 0)
    info = downloads.remote_header(
        view.repo, probe.filename, revision=view.commit or "main", size=probe.files[0].size
    )
    return _report(view.repo, view.variants, info, n_ctx or info.context_length, hw)


def estimate_catalog(entry: CatalogEntry, n_ctx: int, hw: Hardware | None = None) -> FitReport:
    """Estimates for a catalog entry from its shipped shape numbers (offline)."""
    from assistant.models import fit

    hw = _hardware(hw)
    if entry.arch is None:
        return FitReport(
            entry.repo,
            hardware=hw,
            n_ctx=n_ctx,
            error="The catalog has no shape numbers for this model.",
        )
    shape = fit.ModelShape.from_hint(entry.arch, entry.context_length)
    return _report(entry.repo, entry.variants, shape, n_ctx, hw)
