"""Fit estimates: the KV formula, labels, recommendations, remote headers, and a real load."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from assistant.hardware import machine
from assistant.hardware.machine import GpuDevice, Hardware
from assistant.models import downloads, fit, library
from assistant.models.fit import FitEstimate, ModelShape
from assistant.models.gguf_info import parse_gguf_header, read_gguf_info
from assistant.models.hub import ModelVariant, RemoteFile
from tests.tinymodel import write_header_only, write_tiny_model

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

# Llama 3.2 1B's shape in Q8_0: one matrix for the embedding and the output head (tied).
LLAMA1B_TIED = ModelShape(
    "llama",
    n_layers=16,
    n_head=32,
    n_head_kv=8,
    key_length=64,
    value_length=64,
    n_embd=2048,
    n_vocab=128256,
    n_ff=8192,
    context_length=131072,
    quantization="Q8_0",
    weights_bytes=1_320_000_000,
    tied_embeddings=True,
    embd_bytes=128256 * 2048 // 32 * 34,
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
    from assistant.engine.llama import Engine

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


def test_kv_counts_only_the_layers_with_kv_heads(tmp_path: Path) -> None:
    # LFM2-like: attention (2 KV heads of 16) in 2 of 6 layers, convolutions in the others.
    path = write_header_only(
        tmp_path / "hybrid.gguf", "lfm2", n_layers=6, n_embd=128, n_head=8, n_head_kv=[0, 0, 2] * 2
    )
    info = parse_gguf_header(path.read_bytes())
    assert fit.kv_bytes_per_token(info) == 2 * 2 * (16 + 16) * 2 == 256
    assert fit.kv_cache_bytes(info, 1000) == 256_000
    assert fit.estimate(info, 1000, cpu_box()).kv_cache_bytes == 256_000
    # A uniform per-layer array is the plain formula.
    shape = dataclasses.replace(LLAMA8B, kv_heads_per_layer=(8,) * 32)
    assert fit.kv_bytes_per_token(shape) == fit.kv_bytes_per_token(LLAMA8B)
    # Windowed layers with per-layer heads: every 2nd layer is global.
    swa = ModelShape(
        "gemma2", 4, 8, 2, 16, 16, 128, 1000, 0, 8192, sliding_window=1024, swa_pattern=2,
        kv_heads_per_layer=(1, 2, 0, 2),
    )  # fmt: skip
    assert fit.kv_cache_bytes(swa, 8192, swa_full=False) == 64 * (
        1 * 1536 + 2 * 8192 + 0 + 2 * 8192
    )


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
    assert fit.estimate(LLAMA8B, 8192, gpu_box(24)).verdict is fit.FitVerdict.FULL_GPU
    partial = fit.estimate(LLAMA8B, 8192, gpu_box(4))
    assert partial.verdict is fit.FitVerdict.PARTIAL_GPU
    assert 0 < partial.n_gpu_layers < 32 and partial.llama_n_gpu_layers == partial.n_gpu_layers
    assert partial.gpu_bytes < 4 * GiB and partial.cpu_bytes > 0
    assert fit.estimate(LLAMA8B, 8192, gpu_box(0.5)).verdict is fit.FitVerdict.CPU_ONLY
    cpu = fit.estimate(LLAMA8B, 8192, cpu_box(16))
    assert cpu.verdict is fit.FitVerdict.CPU_ONLY and cpu.n_gpu_layers == 0
    assert cpu.total_bytes == cpu.weights_bytes + cpu.kv_cache_bytes + cpu.overhead_bytes
    assert cpu.kv_cache_bytes == 8192 * 128 * 1024
    assert "CPU only build" in cpu.detail
    too = fit.estimate(LLAMA8B, 131072, cpu_box(8))
    assert too.verdict is fit.FitVerdict.TOO_LARGE and not too.fits
    assert "Too large" == fit.estimate(LLAMA8B, 8192, gpu_box(2, ram_gib=2)).label
    # A longer context moves the same model from full to partial offload.
    assert fit.estimate(LLAMA8B, 131072, gpu_box(12)).verdict is fit.FitVerdict.PARTIAL_GPU


def test_tied_embeddings_counted_once_and_copied_for_the_gpu() -> None:
    s = LLAMA1B_TIED
    embd = s.embd_bytes
    assert embd is not None
    big = fit.estimate(s, 8192, gpu_box(24))
    assert big.verdict is fit.FitVerdict.FULL_GPU
    # Weights once (the file); on full offload the GPU also holds the output copy of the matrix.
    assert big.weights_bytes == s.weights_bytes
    assert big.total_bytes == big.weights_bytes + big.kv_cache_bytes + big.overhead_bytes
    assert big.gpu_bytes == big.total_bytes and big.cpu_bytes == embd

    # Free VRAM between "all but the embedding" and "all plus the output copy": not a full fit.
    reserve = fit.GPU_RESERVE_MIN
    vram = (big.total_bytes - embd // 2 + reserve) / GiB
    between = fit.estimate(s, 8192, gpu_box(vram))
    assert between.verdict is fit.FitVerdict.PARTIAL_GPU
    untied = dataclasses.replace(s, tied_embeddings=None, embd_bytes=None)
    assert (
        fit.estimate(untied, 8192, gpu_box(vram)).verdict is fit.FitVerdict.FULL_GPU
    )  # the old mistake

    # Partial offload: a layer is the file less the one shared matrix, divided by the layers.
    small = fit.estimate(s, 8192, gpu_box(1))
    assert small.verdict is fit.FitVerdict.PARTIAL_GPU
    per_layer = (1_320_000_000 - embd) / 16 + small.kv_cache_bytes / 16
    assert small.gpu_bytes == int(small.n_gpu_layers * per_layer) + small.overhead_bytes
    budget = 1 * GiB - reserve
    assert small.n_gpu_layers == int((budget - small.overhead_bytes) // per_layer)
    # Assuming two matrices made layers look ~20% lighter: more of them were planned.
    assert fit.estimate(untied, 8192, gpu_box(1)).n_gpu_layers > small.n_gpu_layers


def test_own_output_head_is_in_the_file_and_on_the_gpu() -> None:
    embd = 128256 * 2048 // 32 * 34
    weights = 1_320_000_000 + embd
    s = dataclasses.replace(
        LLAMA1B_TIED,
        weights_bytes=weights,
        tied_embeddings=False,
        output_bytes=embd,
    )
    est = fit.estimate(s, 8192, gpu_box(24))
    assert est.verdict is fit.FitVerdict.FULL_GPU
    assert est.gpu_bytes == est.total_bytes - embd and est.cpu_bytes == embd
    small = fit.estimate(s, 8192, gpu_box(1))
    per_layer = (weights - 2 * embd) / 16 + small.kv_cache_bytes / 16
    assert small.gpu_bytes == int(small.n_gpu_layers * per_layer) + small.overhead_bytes


def test_tied_embeddings_from_local_and_remote_headers(hf_server: HFServer, tmp_path: Path) -> None:
    tied = read_gguf_info(write_tiny_model(tmp_path / "tied.gguf", tied=True, n_layers=3))
    shape = ModelShape.from_info(tied)
    assert shape.tied_embeddings is True and shape.embd_bytes == tied.token_embd_bytes
    assert shape.output_bytes is None
    own = ModelShape.from_info(read_gguf_info(write_tiny_model(tmp_path / "own.gguf")))
    assert own.tied_embeddings is False and own.output_bytes == own.embd_bytes

    # A remote header lists the tensors too (they come before the data).
    header = write_header_only(
        tmp_path / "h.gguf", "llama", n_layers=4, n_embd=256, n_head=4, n_ff=512, tied=True
    ).read_bytes()
    part = write_header_only(
        tmp_path / "p.gguf", "llama", n_layers=4, n_embd=256, n_head=4, tied=True, split_count=2
    ).read_bytes()
    hf_server.add_repo("t/h-GGUF", {"h.gguf": header, "p-00001-of-00002.gguf": part})
    remote = downloads.remote_header("t/h-GGUF", "h.gguf", size=len(header))
    assert remote.tied_embeddings is True and remote.token_embd_bytes == 1000 * 256 * 2
    shape = ModelShape.from_info(remote)
    # Another quantization of the same model: still tied, its sizes estimated, not the header's.
    variant = ModelVariant("t/h-GGUF", "Q4_K_M", (RemoteFile("h-Q4_K_M.gguf", 10**9, None),))
    est = fit.estimate_variant(variant, shape, 4096, gpu_box(24))
    assert est is not None and est.gpu_bytes == est.total_bytes  # the output copy is counted
    # Part 1 of a split model cannot tell: the estimate assumes two matrices, as before.
    remote_part = downloads.remote_header("t/h-GGUF", "p-00001-of-00002.gguf", size=len(part))
    assert remote_part.tied_embeddings is None
    assert ModelShape.from_info(remote_part).tied_embeddings is None


def test_tied_model_is_one_copy_in_ram(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """On the CPU llama.cpp maps the file: the tied output head costs no second copy."""
    from assistant.engine.llama import Engine

    path = write_tiny_model(tmp_path / "tied.gguf", tied=True, n_layers=3)
    info = read_gguf_info(path)
    caplog.set_level(logging.DEBUG, logger="llama_cpp")
    engine = Engine()
    try:
        engine.load(path, n_ctx=512, n_gpu_layers=0)
    finally:
        engine.close()
    model = [float(m) for m in re.findall(r"model buffer size =\s*([\d.]+) MiB", caplog.text)]
    assert model and sum(model) * MiB == pytest.approx(info.tensor_data_bytes, abs=0.01 * MiB)
    est = fit.estimate(info, 512, cpu_box())
    assert est.weights_bytes == info.tensor_data_bytes and est.cpu_bytes == est.total_bytes


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
    monkeypatch.setattr(downloads, "HEADER_PROBE", 1024)  # smaller than the header: must grow
    info = downloads.remote_header("t/tiny-GGUF", "tiny.gguf", size=len(data))
    assert info == read_gguf_info(tiny) or (info.n_layers, info.n_head_kv) == (3, 2)
    assert fit.kv_bytes_per_token(info) == 384
    gets = [h for h in hf_server.log if h.method == "GET" and h.path.startswith("/cdn/")]
    assert len(gets) >= 2 and gets[0].range == "bytes=0-1023"
    assert sum(h.body_bytes for h in gets) < len(data) / 4  # the header, not the model


def test_plan_gpu_layers_for_local_files(tiny: Path) -> None:
    from assistant.hardware import machine

    info = read_gguf_info(tiny)
    weights = library.weights_bytes(tiny, info)
    assert fit.plan_gpu_layers(info, 1024, cpu_box(), weights_bytes=weights) == 0
    assert fit.plan_gpu_layers(info, 1024, gpu_box(8), weights_bytes=weights) == -1
    # The real machine: this build's answer, whatever it is, is a valid n_gpu_layers.
    assert fit.plan_gpu_layers(info, 1024, machine.detect(), weights_bytes=weights) in (
        -1, 0, 1, 2, 3,
    )  # fmt: skip


def test_hardware_detect_reports_ram_and_why() -> None:
    hw = machine.detect()
    assert hw.total_ram > 256 * MiB and 0 < hw.available_ram <= hw.total_ram
    assert hw.why
    if not hw.gpu_offload:
        assert hw.why == machine.cpu_only_reason()  # tests/hardware/ covers its cases
        assert hw.backend == "CPU" and hw.devices == ()


@pytest.mark.starter
@pytest.mark.parametrize("model", ["starter_model_file", "gemma_model_file"])
def test_real_model_estimate_within_15_percent_of_llama_cpp(
    model: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """The measure: every buffer llama.cpp allocates on load, as its log reports them.

    llama.cpp logs one "<device> <kind> buffer size = X MiB" line per allocation: model weights
    (CPU_Mapped, plus CPU_REPACK copies on this CPU), KV cache, output (logits) and compute.
    Their sum is the memory the load needs beyond Python; the estimate must be within 15%.
    """
    from assistant.engine.llama import Engine

    starter_model_file: Path = request.getfixturevalue(model)
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


def test_the_app_asks_a_child_process_for_the_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's process never runs GPU driver code: a child answers, the same as detect()."""
    monkeypatch.setattr(machine, "_child_answer", None)
    here, child = machine.detect(), machine.detect_in_child()
    assert (child.gpu_offload, child.backend, child.devices, child.why) == (
        here.gpu_offload,
        here.backend,
        here.devices,
        here.why,
    )
    assert child.total_ram == here.total_ram
    asked = []
    monkeypatch.setattr(machine, "_ask_child", lambda timeout: asked.append(timeout))
    again = machine.detect_in_child()  # the GPU answer is kept for a while: a child costs a second
    assert again.devices == child.devices and asked == []


def test_a_gpu_check_that_crashes_leaves_the_cpu_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from assistant.engine.crash_injection import ENV

    monkeypatch.setattr(machine, "_child_answer", None)
    monkeypatch.setenv(ENV, "hardware")  # the child dies of a real SIGSEGV
    hw = machine.detect_in_child()
    assert hw.gpu_offload is False and hw.devices == () and hw.total_ram > 0
    assert hw.why.startswith("Looking for GPUs through llama.cpp failed (the check ")
    assert "SIGSEGV" in hw.why and hw.why.endswith("counting on the CPU alone.")
    monkeypatch.delenv(ENV)
    assert machine.detect_in_child().why == hw.why  # not asked again in this process
