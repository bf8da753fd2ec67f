"""The one catalog model to suggest for this machine, on a first run: the largest that fits and
still writes at least as fast as a person reads, in the quantization that suits where it runs.

Decoding one token reads every weight once, so its speed is about the memory bandwidth divided
by the model's size. On the CPU that makes a smaller quantization faster (Q4_K_M writes about
a third faster than Q6_K), so the CPU gets Q4_K_M; a GPU that holds the whole model gets Q5_K_M,
where the quality is worth the little speed it costs. The CPU's bandwidth is measured (a memory
copy, a fraction of a second); a GPU's cannot be without loading a model, so a modest card's is
assumed. The figures are estimates and are shown as such.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from assistant.hardware.machine import Hardware
from assistant.models import fit
from assistant.models.catalog import CatalogEntry
from assistant.models.fit import FitEstimate, FitVerdict
from assistant.models.hub import ModelVariant
from assistant.sizes import human_size

log = logging.getLogger(__name__)

READING_SPEED = 8.0  # tokens/s: about 6 words a second, as fast as a person reads
GPU_BANDWIDTH = 150e9  # bytes/s: a modest discrete GPU's memory (recent cards have 2-6x this)
# The share of the copy bandwidth llama.cpp's decoding reaches on the CPU: 0.60 measured with
# Gemma 3 270M Q4_K_M on a 2-vCPU AMD EPYC (46.5 tokens/s against 77.8 from 19.7 GB/s); smaller
# models reach less (per-token work weighs more), larger ones about as much.
CPU_EFFICIENCY = 0.6
RAM_SHARE = 0.7  # of the available RAM a model on the CPU may take: the person's apps need room
# Quantizations in order of preference, by where the model runs.
CPU_ORDER = ("Q4_K_M", "MXFP4", "Q5_K_M", "Q4_0", "Q6_K", "Q8_0")
GPU_ORDER = ("Q5_K_M", "Q6_K", "Q4_K_M", "MXFP4", "Q8_0", "Q4_0")


@dataclass(frozen=True)
class Recommendation:
    entry: CatalogEntry
    variant: ModelVariant
    estimate: FitEstimate
    tokens_per_s: float  # expected decode speed here (an estimate)

    @property
    def download_bytes(self) -> int:
        return self.variant.size or 0

    @property
    def on_gpu(self) -> bool:
        return self.estimate.verdict is FitVerdict.FULL_GPU

    def sentence(self) -> str:
        where = "on the GPU" if self.on_gpu else "on this computer's CPU"
        if self.estimate.verdict is FitVerdict.PARTIAL_GPU:
            where = "partly on the GPU"
        return (
            f"{self.entry.name} ({self.variant.quantization}): a "
            f"{human_size(self.download_bytes)} download, about "
            f"{self.tokens_per_s:.0f} tokens/s {where} (estimated)."
        )


@functools.lru_cache(maxsize=1)
def memory_bandwidth() -> float:
    """Bytes/s this machine copies memory at, on as many threads as llama.cpp uses (the best of
    a few copies of 128 MB): the bound on how fast it reads a model's weights here."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from assistant.hardware import machine

    threads = max(1, min(machine.math_cores(), 16))
    size = (128 << 20) // threads * threads
    src = np.ones(size, dtype=np.uint8)
    dst = np.empty_like(src)
    parts = [(dst[i : i + size // threads], src[i : i + size // threads])
             for i in range(0, size, size // threads)]  # fmt: skip
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:  # numpy lets go of the GIL while it copies
        for _ in range(5):
            start = time.perf_counter()
            list(pool.map(lambda pair: np.copyto(*pair), parts))
            best = min(best, time.perf_counter() - start)
    return 2 * size / best  # read and written


def expected_speed(
    estimate: FitEstimate, cpu_bandwidth: float, read_fraction: float = 1.0, unified: bool = False
) -> float:
    """Tokens/s from the bytes one token reads on each side and each side's bandwidth.
    ``read_fraction``: the share of the weights a token reads (a mixture of experts reads only
    its active ones); ``unified``: a GPU that shares system memory reads at the CPU's speed."""
    weights = max(estimate.weights_bytes, 1) * read_fraction
    on_gpu = weights * estimate.n_gpu_layers / max(estimate.n_layers, 1)
    if estimate.verdict is FitVerdict.FULL_GPU:
        on_gpu = weights
    cpu = cpu_bandwidth * CPU_EFFICIENCY
    gpu_bandwidth = cpu if unified else GPU_BANDWIDTH
    seconds = on_gpu / gpu_bandwidth + (weights - on_gpu) / cpu
    return 1 / seconds


def recommend(
    entries: Iterable[CatalogEntry],
    hardware: Hardware,
    n_ctx: int = 4096,
    cpu_bandwidth: float | None = None,
) -> Recommendation | None:
    """The largest model that fits and writes at reading speed (else the fastest that fits),
    in the quantization that suits where it runs; None when nothing fits."""
    bandwidth = cpu_bandwidth if cpu_bandwidth is not None else memory_bandwidth()
    fitting: list[Recommendation] = []
    for entry in entries:
        if entry.gated or entry.arch is None:
            continue  # a gated model needs a Hugging Face account first: not a first step
        shape = fit.ModelShape.from_hint(entry.arch, entry.context_length)
        for variant in entry.variants:
            estimate = fit.estimate_variant(variant, shape, n_ctx, hardware)
            if estimate is None or not estimate.fits:
                continue
            in_ram = estimate.verdict is FitVerdict.CPU_ONLY or hardware.unified_memory
            if in_ram and estimate.total_bytes > RAM_SHARE * hardware.available_ram:
                continue  # the person's other apps need that memory too
            active = parameters(entry, active=True)
            read = active / parameters(entry) if active and parameters(entry) else 1.0
            speed = expected_speed(estimate, bandwidth, read, hardware.unified_memory)
            fitting.append(Recommendation(entry, variant, estimate, speed))
    if not fitting:
        return None
    fast = [r for r in fitting if r.tokens_per_s >= READING_SPEED]
    if not fast:
        return max(fitting, key=lambda r: r.tokens_per_s)

    def rank(r: Recommendation) -> tuple[float, int, float]:
        order = GPU_ORDER if r.on_gpu else CPU_ORDER
        quant = r.variant.quantization.upper()
        preference = order.index(quant) if quant in order else len(order)
        return (parameters(r.entry), -preference, r.tokens_per_s)

    return max(fast, key=rank)


def parameters(entry: CatalogEntry, active: bool = False) -> float:
    """Its parameter count in billions, from the catalog's "7.6B" (0 if it says none); with
    ``active``, those a mixture of experts reads per token (0 for a dense model)."""
    text = (entry.active_params if active else entry.params).strip().upper().removesuffix("B")
    try:
        return float(text)
    except ValueError:
        return 0.0
