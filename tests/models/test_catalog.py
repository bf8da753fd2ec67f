"""The shipped catalog: complete, consistent, and usable offline."""

from __future__ import annotations

import re

from assistant.hardware import machine
from assistant.models import catalog, fit, hub


def test_catalog_has_the_curated_models() -> None:
    entries = catalog.entries()
    repos = {e.repo for e in entries}
    for needed in (
        "Qwen/Qwen3-8B-GGUF",
        "Llama-3.1-8B-Instruct",
        "gemma-3-12b-it",
        "Qwen3-14B",
        "Mistral-Small-3.2-24B-Instruct",
        "Qwen3-30B-A3B",
        "gpt-oss-20b",
        "Qwen2.5-Coder-7B-Instruct",
        "Qwen3-Coder-30B-A3B-Instruct",
        "DeepSeek-R1-0528-Qwen3-8B",
        "Qwen3-4B-Instruct-2507",
        "gemma-3-4b-it",
        "Phi-4-mini-instruct",
        "SmolLM3-3B",
        "Llama-3.2-3B-Instruct",
        "Qwen3-1.7B",
        "gemma-3-1b-it",
        "Llama-3.2-1B-Instruct",
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
        # The default is Q4_K_M; a model shipped in one format only (gpt-oss: MXFP4) has just that.
        quants = [v.quantization for v in e.variants]
        assert e.variant().quantization == ("Q4_K_M" if "Q4_K_M" in quants else quants[0])


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
