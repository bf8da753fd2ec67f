"""Will this model fit? Memory a GGUF needs at a given context size, and where it can live.

The numbers follow what llama.cpp (0.3.36's build) allocates on load, as its log reports them:
- model buffers: the tensor bytes of the file (``tensor_data_bytes``). The token embedding stays
  on the CPU; a model without an ``output.weight`` (tied embeddings) uses the embedding matrix as
  its output head, and llama.cpp loads a second copy of it wherever the output layer runs (the
  GPU, on full offload; in RAM it is the same mapped bytes);
- KV cache: per token, K and V for every layer: ``n_layers * n_head_kv * (key_length +
  value_length) * 2`` bytes (f16), summed layer by layer when the file gives per-layer head
  counts (hybrid models: their recurrent layers have none). Sliding-window layers (Gemma 2/3)
  get the full size too, because llama.cpp's context default is ``swa_full = true`` ("using
  full-size SWA cache" in its log); pass ``swa_full=False`` only if the engine turns that off;
- compute buffer: the largest intermediate of one micro-batch (n_ubatch = 512 tokens): usually
  the logits (``n_vocab * n_ubatch`` floats), or, at long contexts without flash attention, the
  attention scores (``n_ctx * n_ubatch * n_head`` floats), plus a few activations. The engine
  keeps llama.cpp's default flash_attn_type=auto, which turns flash attention on for the CPU,
  CUDA, Metal and Vulkan backends ("Flash Attention enabled" in the log), so that is the default;
- output buffer: one row of logits.

Over 400 lines: the memory model (weights, KV cache, compute buffers, per backend), written out
with the llama.cpp allocations it follows; all of it pure functions.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from assistant.models.gguf_info import GGUFArray, GGUFInfo
from assistant.models.hub import ModelVariant, quant_rank
from assistant.sizes import human_size

if TYPE_CHECKING:
    from assistant.hardware.machine import Hardware
    from assistant.models.catalog import ArchHint

log = logging.getLogger(__name__)


class FitVerdict(enum.StrEnum):
    """Whether a model fits this machine, and how."""

    FULL_GPU = "full_gpu"
    PARTIAL_GPU = "partial_gpu"
    CPU_ONLY = "cpu_only"
    TOO_LARGE = "too_large"

    @property
    def label(self) -> str:
        """As the Models page and `assistant models` show it."""
        return _VERDICT_LABELS[self]


_VERDICT_LABELS = {
    FitVerdict.FULL_GPU: "Full GPU offload",
    FitVerdict.PARTIAL_GPU: "Partial GPU offload",
    FitVerdict.CPU_ONLY: "CPU only",
    FitVerdict.TOO_LARGE: "Too large",
}

N_UBATCH = 512  # llama.cpp's default micro-batch (Llama(n_batch=512) -> n_ubatch 512)
KV_BYTES_PER_ELEM = 2  # f16 K and V cache (llama.cpp default type_k / type_v)
# Room left on the GPU for the driver, CUDA context and fragmentation.
GPU_RESERVE_MIN = 384 * 2**20
GPU_RESERVE_FRACTION = 0.05
# Quantizations we recommend first: the sweet spot between size and quality.
PREFERRED = ("Q4_K_M", "Q4_K_L", "Q5_K_S", "Q5_K_M", "Q5_K_L", "Q6_K", "Q6_K_L")
# Architectures whose sliding-window layers are not marked in the GGUF: every Nth layer is global.
_SWA_PATTERN = {"gemma2": 2, "gemma3": 6, "gemma3n": 5, "cohere2": 4}


@dataclass(frozen=True)
class ModelShape:
    """The numbers an estimate needs, from a GGUF header or a catalog entry."""

    architecture: str
    n_layers: int
    n_head: int
    n_head_kv: int
    key_length: int
    value_length: int
    n_embd: int
    n_vocab: int
    n_ff: int
    context_length: int
    sliding_window: int | None = None
    swa_pattern: int | None = None
    quantization: str | None = None
    weights_bytes: int | None = None
    # Per-layer KV heads (hybrid models; 0 for recurrent layers), None when all have n_head_kv.
    kv_heads_per_layer: tuple[int, ...] | None = None
    # One matrix for the token embedding and the output head? None: unknown (two assumed).
    tied_embeddings: bool | None = None
    # Their exact bytes in the file whose header was read (None: estimate from the quantization).
    embd_bytes: int | None = None
    output_bytes: int | None = None

    @classmethod
    def from_info(cls, info: GGUFInfo) -> ModelShape:
        meta = info.metadata

        def integer(key: str) -> int:
            value = meta.get(key)
            if isinstance(value, GGUFArray):  # per-layer numbers: the largest
                return max(value.integers() or (0,), default=0)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        tokens = meta.get("tokenizer.ggml.tokens")
        n_vocab = tokens.count if isinstance(tokens, GGUFArray) else 0
        n_vocab = n_vocab or integer(f"{info.architecture}.vocab_size")
        return cls(
            architecture=info.architecture,
            n_layers=info.n_layers,
            n_head=info.n_head,
            n_head_kv=info.n_head_kv,
            key_length=info.key_length,
            value_length=info.value_length,
            n_embd=info.n_embd,
            n_vocab=n_vocab,
            n_ff=integer(f"{info.architecture}.feed_forward_length"),
            context_length=info.context_length,
            sliding_window=info.sliding_window,
            swa_pattern=_SWA_PATTERN.get(info.architecture) if info.sliding_window else None,
            quantization=info.quantization,
            weights_bytes=info.tensor_data_bytes or info.file_size,
            kv_heads_per_layer=info.kv_heads_per_layer,
            tied_embeddings=info.tied_embeddings,
            embd_bytes=info.token_embd_bytes,
            output_bytes=info.output_bytes,
        )

    @classmethod
    def from_hint(cls, hint: ArchHint, context_length: int = 0) -> ModelShape:
        return cls(
            architecture=hint.architecture,
            n_layers=hint.n_layers,
            n_head=hint.n_head,
            n_head_kv=hint.n_head_kv,
            key_length=hint.head_dim,
            value_length=hint.head_dim,
            n_embd=hint.n_embd,
            n_vocab=hint.n_vocab,
            n_ff=0,
            context_length=context_length,
            sliding_window=hint.sliding_window,
            swa_pattern=hint.swa_pattern,
        )


@dataclass(frozen=True)
class FitEstimate:
    verdict: FitVerdict
    n_gpu_layers: int  # layers to offload (n_layers when all of them go)
    n_layers: int
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int  # compute + output buffers
    total_bytes: int
    detail: str  # a sentence or two for the user
    gpu_bytes: int = 0
    cpu_bytes: int = 0

    @property
    def label(self) -> str:
        return self.verdict.label

    @property
    def fits(self) -> bool:
        return self.verdict is not FitVerdict.TOO_LARGE

    @property
    def llama_n_gpu_layers(self) -> int:
        """What to pass to llama.cpp: -1 (everything, output layer included) or a layer count."""
        return -1 if self.verdict is FitVerdict.FULL_GPU else self.n_gpu_layers


def _shape(model: GGUFInfo | ModelShape) -> ModelShape:
    return model if isinstance(model, ModelShape) else ModelShape.from_info(model)


def _kv_heads(s: ModelShape) -> tuple[int, ...]:
    """KV heads of each layer: the per-layer counts when known, else n_head_kv for every layer."""
    if s.kv_heads_per_layer is not None and len(s.kv_heads_per_layer) == s.n_layers:
        return s.kv_heads_per_layer
    return (s.n_head_kv,) * s.n_layers


def kv_bytes_per_token(model: GGUFInfo | ModelShape) -> int:
    """K and V for every layer, f16: ``sum(n_head_kv of the layer) * (key_len + value_len) * 2``
    (``n_layers * n_head_kv * ...`` when every layer has the same heads)."""
    s = _shape(model)
    return sum(_kv_heads(s)) * (s.key_length + s.value_length) * KV_BYTES_PER_ELEM


def kv_cache_bytes(model: GGUFInfo | ModelShape, n_ctx: int, *, swa_full: bool = True) -> int:
    s = _shape(model)
    per_head_token = (s.key_length + s.value_length) * KV_BYTES_PER_ELEM
    heads = _kv_heads(s)
    if swa_full or not s.sliding_window or not s.swa_pattern:
        return per_head_token * sum(heads) * n_ctx
    # llama.cpp's iSWA cache: global layers (every swa_pattern-th) keep n_ctx cells, windowed
    # ones n_swa + n_ubatch.
    swa_cells = min(n_ctx, s.sliding_window + N_UBATCH)
    return per_head_token * sum(
        h * (n_ctx if (il + 1) % s.swa_pattern == 0 else swa_cells) for il, h in enumerate(heads)
    )


def overhead_bytes(model: GGUFInfo | ModelShape, n_ctx: int, *, flash_attn: bool = True) -> int:
    """llama.cpp's compute buffer (one micro-batch's largest intermediates) + output buffer."""
    s = _shape(model)
    f32 = 4
    logits = s.n_vocab * N_UBATCH * f32
    scores = 0 if flash_attn else n_ctx * N_UBATCH * s.n_head * f32
    activations = N_UBATCH * (4 * s.n_embd + 2 * s.n_ff) * f32
    output = s.n_vocab * f32
    return max(logits, scores) + activations + output


def _non_repeating_bytes(s: ModelShape, weights: int) -> tuple[int, int]:
    """(token embedding, output head) bytes in the file: they do not belong to any layer.

    The output head is 0 when the model ties it to the embedding (one matrix in the file).
    """
    bits = quant_rank(s.quantization) if s.quantization else 4.85
    bits = 16.0 if bits >= 99 else bits
    guess = int(s.n_vocab * s.n_embd * bits / 8)
    if s.tied_embeddings:
        # Small models' shared matrix is often most of the file (Gemma 3 270M: 70%).
        embd = s.embd_bytes if s.embd_bytes is not None else min(guess, weights // 2)
        return min(embd, weights), 0
    if s.tied_embeddings is None:
        # Unknown: assume two matrices, never more than a third of the file each (the matrix
        # may be shared, the quant mix odd).
        one = min(guess, weights // 3)
        return one, one
    embd = s.embd_bytes if s.embd_bytes is not None else min(guess, weights // 3)
    head = s.output_bytes if s.output_bytes is not None else min(guess, weights // 3)
    if embd + head > weights:
        embd, head = min(embd, weights // 3), min(head, weights // 3)
    return embd, head


def estimate(
    model: GGUFInfo | ModelShape,
    n_ctx: int,
    hardware: Hardware,
    *,
    weights_bytes: int | None = None,
    swa_full: bool = True,
    flash_attn: bool = True,
) -> FitEstimate:
    """Where the model fits with ``n_ctx`` tokens of context on ``hardware``."""
    s = _shape(model)
    if n_ctx <= 0:
        n_ctx = s.context_length or 4096
    elif s.context_length:
        n_ctx = min(n_ctx, s.context_length)  # the engine loads no more than the model knows
    weights = weights_bytes if weights_bytes is not None else (s.weights_bytes or 0)
    kv = kv_cache_bytes(s, n_ctx, swa_full=swa_full)
    overhead = overhead_bytes(s, n_ctx, flash_attn=flash_attn)
    total = weights + kv + overhead
    n_layers = max(s.n_layers, 1)
    embd, head = _non_repeating_bytes(s, weights)
    per_layer_w = max(0, weights - embd - head) / n_layers
    # On full offload the output head goes to the GPU too; a tied one is a second copy of the
    # embedding (which stays in RAM).
    output_copy = embd if s.tied_embeddings else 0
    per_layer_kv = kv / n_layers
    ram = hardware.available_ram
    sizes = (
        f"about {human_size(total)} (weights {human_size(weights)}, {n_ctx:,}-token context "
        f"{human_size(kv)}, work buffers {human_size(overhead)})"
    )

    def result(verdict: FitVerdict, layers: int, gpu: int, cpu: int, detail: str) -> FitEstimate:
        return FitEstimate(
            verdict,
            layers,
            s.n_layers,
            weights,
            kv,
            overhead,
            total,
            f"Needs {sizes}. {detail}",
            gpu,
            cpu,
        )

    if hardware.gpu_offload and hardware.devices:
        budget = hardware.vram_free - max(
            GPU_RESERVE_MIN, int(hardware.vram_total * GPU_RESERVE_FRACTION)
        )
        if hardware.unified_memory:
            budget = min(budget, ram)
        full_gpu = total - embd + output_copy
        if full_gpu <= budget:
            return result(
                FitVerdict.FULL_GPU,
                s.n_layers,
                full_gpu,
                embd,
                f"All {s.n_layers} layers fit in {human_size(hardware.vram_free)} of free "
                "video memory.",
            )
        k = int((budget - overhead) // (per_layer_w + per_layer_kv)) if budget > overhead else 0
        k = max(0, min(k, s.n_layers - 1))
        if k > 0:
            gpu = int(k * (per_layer_w + per_layer_kv)) + overhead
            cpu = total - gpu
            if cpu <= ram:
                return result(
                    FitVerdict.PARTIAL_GPU,
                    k,
                    gpu,
                    cpu,
                    f"{k} of {s.n_layers} layers fit in {human_size(hardware.vram_free)} of free "
                    f"video memory; the rest ({human_size(cpu)}) runs from RAM, slower.",
                )
            return result(
                FitVerdict.TOO_LARGE,
                k,
                gpu,
                cpu,
                f"Even with {k} layers on the GPU, {human_size(cpu)} would have to fit in "
                f"{human_size(ram)} of available RAM.",
            )
        if total <= ram:
            return result(
                FitVerdict.CPU_ONLY,
                0,
                0,
                total,
                f"It does not fit in {human_size(hardware.vram_free)} of free video memory; "
                f"it runs on the CPU from {human_size(ram)} of available RAM.",
            )
        return result(
            FitVerdict.TOO_LARGE,
            0,
            0,
            total,
            f"More than the {human_size(ram)} of available RAM and "
            f"{human_size(hardware.vram_free)} of free video memory.",
        )

    if total <= ram:
        return result(
            FitVerdict.CPU_ONLY,
            0,
            0,
            total,
            f"Runs on the CPU from {human_size(ram)} of available RAM. {hardware.why}".strip(),
        )
    return result(
        FitVerdict.TOO_LARGE,
        0,
        0,
        total,
        f"More than the {human_size(ram)} of available RAM. Choose a smaller quantization, "
        "a shorter context or a smaller model.",
    )


def estimate_variant(
    variant: ModelVariant, model: GGUFInfo | ModelShape, n_ctx: int, hardware: Hardware, **kw: bool
) -> FitEstimate | None:
    """Estimate for a variant whose header we may not have read: its file size is the weights."""
    if variant.size is None:
        return None
    s = _shape(model)
    if variant.quantization != s.quantization:
        # Another quantization: the header's tensor sizes are not this variant's; keep only
        # whether the embedding is tied.
        s = replace(s, quantization=variant.quantization, embd_bytes=None, output_bytes=None)
    return estimate(s, n_ctx, hardware, weights_bytes=variant.size, **kw)


def recommend(
    estimates: dict[ModelVariant, FitEstimate | None],
) -> ModelVariant | None:
    """Best quality that fits fully on the GPU, else best that fits in RAM; Q4_K_M..Q6_K first."""

    def preferred(v: ModelVariant) -> bool:
        return v.quantization.upper().removeprefix("UD-") in PREFERRED

    usable = {v: e for v, e in estimates.items() if e is not None and e.fits}
    tiers = [
        [v for v, e in usable.items() if preferred(v) and e.verdict is FitVerdict.FULL_GPU],
        [v for v in usable if preferred(v)],
        [v for v, e in usable.items() if e.verdict is FitVerdict.FULL_GPU],
        list(usable),
    ]
    for tier in tiers:
        if tier:
            if tier is tiers[2] or tier is tiers[3]:
                # Outside the sweet spot, take the variant nearest to it, not the largest.
                return min(
                    tier, key=lambda v: abs(quant_rank(v.quantization) - quant_rank("Q5_K_M"))
                )
            return max(tier, key=lambda v: quant_rank(v.quantization))
    return None


def plan_gpu_layers(
    info: GGUFInfo, n_ctx: int, hardware: Hardware, *, weights_bytes: int | None = None
) -> int:
    """n_gpu_layers to load a local GGUF with: -1 for all, 0 for CPU only, else a layer count.

    ``weights_bytes``: the tensor bytes of every part of a split model (library.weights_bytes).
    """
    if not hardware.gpu_offload:
        return 0
    est = estimate(info, n_ctx, hardware, weights_bytes=weights_bytes)
    return est.llama_n_gpu_layers if est.verdict is not FitVerdict.TOO_LARGE else est.n_gpu_layers


# Continuous batching: on a 2-core CPU llama.cpp's aggregate speed is flat from 16 to 64 parallel
# sequences with a KV cache split per sequence (llama-batched-bench: 129, 125 and 134 tokens/s at
# 16, 32 and 64), so more slots cost little and queue fewer requests: at 100 clients, 128 slots
# gave a p99 time to first token of 6 s where 16 gave 71 s (tests/benchmarks/bench_server.py).
# A unified cache fell from 132 to 75 tokens/s at 64 sequences: not used.
MAX_AUTO_SLOTS = 128
SLOT_MEMORY_SHARE = 0.2  # of the memory free after the weights, for the slots' KV caches


def plan_slots(
    model: GGUFInfo | ModelShape,
    n_ctx: int,
    hardware: Hardware,
    *,
    cap: int = MAX_AUTO_SLOTS,
    weights_bytes: int | None = None,
) -> int:
    """How many requests to serve at once, each with an ``n_ctx``-token KV cache.

    As many caches as fit in a fifth of the memory the model leaves free (video memory when the
    model fits there whole, else RAM), at least 1 and at most ``cap``.
    """
    s = _shape(model)
    weights = weights_bytes if weights_bytes is not None else (s.weights_bytes or 0)
    per_slot = kv_cache_bytes(s, n_ctx)
    if per_slot <= 0:
        return 1
    if hardware.gpu_offload and hardware.vram_free > weights + per_slot:
        free = hardware.vram_free - weights - overhead_bytes(s, n_ctx)
    else:
        free = hardware.available_ram - (0 if hardware.gpu_offload else weights)
    return max(1, min(cap, int(max(0, free) * SLOT_MEMORY_SHARE // per_slot)))
