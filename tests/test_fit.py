"""Fit estimates: the KV formula, labels, recommendations, remote headers, and a real load."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from assistant import fit, hardware
from assistant.fit import FitEstimate, ModelShape
from assistant.gguf_info import read_gguf_info
from assistant.hardware import GpuDevice, Hardware
from assistant.hub import ModelVariant, RemoteFile
from tests.tinymodel import write_tiny_model

if TYPE_CHECKING:
    from tests.hfserver import HFServer

# The hf_server fixture (a plugin, so pytest rewrites its asserts and nothing is imported twice).
pytest_plugins = ["tests.hfserver"]

GiB = 2**30
MiB = 2**20


def cpu_box(ram_gib: float = 16) -> Hardware:
    return Hardware(int(ram_gib * GiB), int(ram_gib * GiB), False, "CPU", (), "CPU only build")


def gpu_box(vram_gib: float, ram_gib: float = 32) -> Hardware:
    dev = GpuDevice("CUDA0", "Test GPU", "CUDA", False, int(vram_gib * GiB), int(vram_gib * GiB))
    return Hardware(int(ram_gib * GiB), int(ram_gib * GiB), True, "CUDA", (dev,), "GPU")


# Llama 3.1 8B's shape, weights as in a Q4_K_M file.
LLAMA8B = ModelShape(
    "llama",
    n_layers=32,
    n_head=32,
    n_head_kv=8,
    key_length=128,
    value_length=128,
    n_embd=4096,
    n_vocab=128256,
    n_ff=14336,
    context_length=131072,
    quantization="Q4_K_M",
    weights_bytes=4_920_000_000,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(
        tmp_path_factory.mktemp("fit") / "tiny.gguf", n_layers=3, n_head=4, n_head_kv=2, n_embd=64
    )


def test_kv_bytes_per_token_is_the_formula(tiny: Path) -> None:
    info = read_gguf_info(tiny)
    # 2 (K and V) x 3 layers x 2 KV heads x head_dim 16 x 2 bytes (f16)
    assert fit.kv_bytes_per_token(info) == 2 * 3 * 2 * 16 * 2 == 384
    assert fit.kv_cache_bytes(info, 1000) == 384_000
    assert fit.kv_bytes_per_token(LLAMA8B) == 128 * 1024


def test_kv_matches_what_llama_cpp_allocates(tiny: Path, caplog: pytest.LogCaptureFixture) -> None:
    from assistant.engine import Engine

    caplog.set_level(logging.DEBUG, logger="llama_cpp")
    engine = Engine()
    try:
        engine.load(tiny, n_ctx=2048, n_gpu_layers=0)
    finally:
        engine.close()
    kv = [float(m) for m in re.findall(r"KV buffer size =\s*([\d.]+) MiB", caplog.text)]
    assert kv, "llama.cpp did not log its KV buffer"
    # 384 B x 2048 = 0.75 MiB exactly (the log rounds to 2 decimals).
    assert sum(kv) * MiB == fit.kv_cache_bytes(read_gguf_info(tiny), 2048)


def test_sliding_window_layers_only_when_swa_cache_is_not_full() -> None:
    gemma = ModelShape(
        "gemma2",
        42,
        16,
        8,
        256,
        256,
        3584,
        256000,
        14336,
        8192,
        sliding_window=4096,
        swa_pattern=2,
        weights_bytes=5 * GiB,
    )
    full = fit.kv_cache_bytes(gemma, 8192)
    assert full == fit.kv_bytes_per_token(gemma) * 8192  # llama.cpp's default: swa_full
    windowed = fit.kv_cache_bytes(gemma, 8192, swa_full=False)
    per_layer = 8 * 512 * 2
    assert windowed == per_layer * (21 * 8192 + 21 * (4096 + 512))


def test_labels() -> None:
    assert fit.estimate(LLAMA8B, 8192, gpu_box(24)).label == fit.FULL_GPU
    partial = fit.estimate(LLAMA8B, 8192, gpu_box(4))
    assert partial.label == fit.PARTIAL_GPU
    assert 0 < partial.n_gpu_layers < 32 and partial.llama_n_gpu_layers == partial.n_gpu_layers
    assert partial.gpu_bytes < 4 * GiB and partial.cpu_bytes > 0
    assert fit.estimate(LLAMA8B, 8192, gpu_box(0.5)).label == fit.CPU_ONLY
    cpu = fit.estimate(LLAMA8B, 8192, cpu_box(16))
    assert cpu.label == fit.CPU_ONLY and cpu.n_gpu_layers == 0
    assert cpu.total_bytes == cpu.weights_bytes + cpu.kv_cache_bytes + cpu.overhead_bytes
    assert cpu.kv_cache_bytes == 8192 * 128 * 1024
    assert "CPU only build" in cpu.detail
    too = fit.estimate(LLAMA8B, 131072, cpu_box(8))
    assert too.label == fit.TOO_LARGE and not too.fits
    assert "Too large" == fit.estimate(LLAMA8B, 8192, gpu_box(2, ram_gib=2)).label
    # A longer context moves the same model from full to partial offload.
    assert fit.estimate(LLAMA8B, 131072, gpu_box(12)).label == fit.PARTIAL_GPU


def _variants(sizes: dict[str, float]) -> list[ModelVariant]:
    return [
        ModelVariant("a/b", q, (RemoteFile(f"b-{q}.gguf", int(gb * 1e9), None),))
        for q, gb in sizes.items()
    ]


def test_recommend_prefers_quality_that_fits_the_gpu() -> None:
    variants = _variants(
        {"Q3_K_M": 4.0, "Q4_K_M": 4.9, "Q5_K_M": 5.7, "Q6_K": 6.6, "Q8_0": 8.5, "F16": 16.1}
    )

    def pick(hw: Hardware, n_ctx: int = 4096) -> str | None:
        est: dict[ModelVariant, FitEstimate | None] = {
            v: fit.estimate_variant(v, LLAMA8B, n_ctx, hw) for v in variants
        }
        best = fit.recommend(est)
        return best.quantization if best else None

    assert pick(gpu_box(24)) == "Q6_K"  # Q8_0 fits too, but Q4_K_M..Q6_K come first
    assert pick(gpu_box(6.5)) == "Q5_K_M"  # the best preferred one that fits fully
    assert pick(gpu_box(4)) == "Q6_K"  # none fits fully: the best preferred that fits in RAM
    assert pick(cpu_box(5.0)) == "Q3_K_M"  # only below the sweet spot fits
    assert pick(cpu_box(2)) is None


def test_remote_header_read_with_range_requests(
    hf_server: HFServer, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tiny.read_bytes()
    hf_server.add_repo("t/tiny-GGUF", {"tiny.gguf": data})
    monkeypatch.setattr(fit, "HEADER_PROBE", 1024)  # smaller than the header: must grow
    info = fit.remote_info("t/tiny-GGUF", "tiny.gguf", size=len(data))
    assert info == read_gguf_info(tiny) or (info.n_layers, info.n_head_kv) == (3, 2)
    assert fit.kv_bytes_per_token(info) == 384
    gets = [h for h in hf_server.log if h.method == "GET" and h.path.startswith("/cdn/")]
    assert len(gets) >= 2 and gets[0].range == "bytes=0-1023"
    assert sum(h.body_bytes for h in gets) < len(data) / 4  # the header, not the model


def test_plan_gpu_layers_for_local_files(tiny: Path) -> None:
    assert fit.plan_gpu_layers(tiny, 1024, cpu_box()) == 0
    assert fit.plan_gpu_layers(tiny, 1024, gpu_box(8)) == -1
    # The real machine: this build's answer, whatever it is, is a valid n_gpu_layers.
    assert fit.plan_gpu_layers(tiny, 1024) in (-1, 0, 1, 2, 3)


def test_hardware_detect_reports_ram_and_why() -> None:
    hw = hardware.detect()
    assert hw.total_ram > 256 * MiB and 0 < hw.available_ram <= hw.total_ram
    assert hw.why
    if not hw.gpu_offload:
        assert hw.why == "This llama.cpp build has no GPU backend (CPU only)."
        assert hw.backend == "CPU" and hw.devices == ()


@pytest.mark.starter
def test_starter_estimate_within_15_percent_of_llama_cpp(
    starter_model_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The measure: every buffer llama.cpp allocates on load, as its log reports them.

    llama.cpp logs one "<device> <kind> buffer size = X MiB" line per allocation: model weights
    (CPU_Mapped, plus CPU_REPACK copies on this CPU), KV cache, output (logits) and compute.
    Their sum is the memory the load needs beyond Python; the estimate must be within 15%.
    """
    from assistant.engine import Engine

    info = read_gguf_info(starter_model_file)
    caplog.set_level(logging.DEBUG, logger="llama_cpp")
    engine = Engine()
    for n_ctx in (4096, 32768):
        caplog.clear()
        try:
            engine.load(starter_model_file, n_ctx=n_ctx, n_gpu_layers=0)
        finally:
            engine.close()
        buffers = re.findall(r"(\w+) buffer size =\s*([\d.]+) MiB", caplog.text)
        kinds = {k for k, _ in buffers}
        assert {"model", "KV", "output", "compute"} <= kinds, buffers
        measured = sum(float(v) for _, v in buffers) * MiB
        est = fit.estimate(info, n_ctx, cpu_box(64))
        assert est.total_bytes == pytest.approx(measured, rel=0.15), (n_ctx, buffers)
        kv = sum(float(v) for k, v in buffers if k == "KV") * MiB
        assert est.kv_cache_bytes == pytest.approx(kv, rel=0.01)
