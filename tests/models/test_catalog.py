"""The shipped catalog: complete, consistent, and usable offline."""

from __future__ import annotations

import re

from assistant.hardware import machine
from assistant.models import catalog, fit, hub


def test_catalog_has_the_curated_models() -> None:
    entries = catalog.entries()
    repos = {e.repo for e in entries}
    for needed in (
        "Qwen2.5-7B-Instruct",
        "Llama-3.1-8B-Instruct",
        "Mistral-7B-Instruct-v0.3",
        "gemma-2-9b-it",
        "Qwen2.5-Coder-7B-Instruct",
        "DeepSeek-R1-Distill-Qwen-7B",
        "DeepSeek-R1-Distill-Llama-8B",
        "Llama-3.2-3B-Instruct",
        "Llama-3.2-1B-Instruct",
        "Qwen2.5-3B-Instruct",
        "Qwen2.5-1.5B-Instruct",
        "Phi-3.5-mini-instruct",
    ):
        assert any(needed in r for r in repos), needed
    big = [e for e in entries if float(e.params.rstrip("B")) >= 7]
    small = [e for e in entries if float(e.params.rstrip("B")) < 4.5]
    assert len(big) >= 8 and len(small) >= 5


def test_every_entry_is_well_formed() -> None:
    for e in catalog.entries():
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", e.repo)
        assert e.license and e.description and e.context_length >= 4096
        assert e.arch is not None and e.arch.n_layers > 0
        assert e.variants
        for v in e.variants:
            assert v.repo == e.repo
            assert hub.quantization_from_filename(v.filename) == v.quantization
            assert v.size and v.size > 100_000_000
            assert v.approx and v.sha256 is None  # never claim what we could not check
        sizes = [v.size for v in e.variants]
        assert sizes == sorted(sizes)  # Q4_K_M < Q5_K_M < Q6_K < Q8_0
        assert e.variant().quantization == "Q4_K_M"


def test_catalog_fit_estimates_offline() -> None:
    hw = machine.Hardware(
        total_ram=16 * 2**30,
        available_ram=12 * 2**30,
        gpu_offload=False,
        backend="CPU",
        why="CPU only",
    )
    entry = catalog.find("bartowski/Meta-Llama-3.1-8B-Instruct-GGUF")
    assert entry is not None and entry.arch is not None
    shape = fit.ModelShape.from_hint(entry.arch, entry.context_length)
    # Llama 3.1 8B: 32 layers x 8 KV heads x (128 + 128) x 2 bytes = 128 KiB per token.
    assert fit.kv_bytes_per_token(shape) == 131072
    estimates = {v: fit.estimate_variant(v, shape, 8192, hw) for v in entry.variants}
    assert all(e is not None and e.verdict is fit.FitVerdict.CPU_ONLY for e in estimates.values())
    assert fit.recommend(estimates).quantization == "Q6_K"
