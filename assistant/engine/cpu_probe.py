"""Whether llama.cpp's extra weight buffer types are safe on this CPU, found out in a child.

On CPUs with AMX (Intel Sapphire Rapids and later) a native llama.cpp build puts quantized
weights in an AMX buffer, and on some machines (VMs whose kernel does not grant the tile-data
permission to llama.cpp's worker threads: llama.cpp #20824) the first matrix multiply then dies
with SIGSEGV inside ``ldtilecfg``. Nothing can catch that in-process, so before the first load
on such a CPU a child process loads a tiny Q8_0 model with the extra buffer types on and decodes
a batch. If the child dies, the engine loads every model with ``use_extra_bufts = False``.

The answer is cached per llama.cpp build and CPU (``paths.cache_dir()``), so the probe runs once.

``assistant --cpu-probe MODEL`` (or ``python -m assistant.engine.cpu_probe MODEL``) is that child.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from assistant import files, paths
from assistant.errors import describe_exit
from assistant.hardware import machine
from assistant.paths import assistant_command

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 120
_lock = threading.Lock()
_answer: bool | None = None


def needs_probe() -> bool:
    """Whether this CPU and build could take the AMX path at all."""
    if "amx_tile" not in machine.cpu_flags():
        return False
    return "AMX_INT8 = 1" in _system_info()


def extra_bufts_work() -> bool:
    """True unless a probe showed that extra buffer types crash llama.cpp on this machine."""
    global _answer
    with _lock:
        if _answer is None:
            _answer = _cached_or_probe() if needs_probe() else True
        return _answer


def forget() -> None:
    """Drop the in-process answer (tests); the cached file stays."""
    global _answer
    with _lock:
        _answer = None


def _system_info() -> str:
    import llama_cpp

    from assistant.hardware import backends

    backends.ensure_loaded()  # a portable build reports the CPU variant it chose
    info = llama_cpp.llama_print_system_info()
    return info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)


def cache_key() -> str:
    import llama_cpp

    identity = "\n".join(
        [
            getattr(llama_cpp, "__version__", "?"),
            str(Path(llama_cpp.__file__).resolve().parent),
            _system_info(),
            machine.cpu_name(),
            " ".join(sorted(machine.cpu_flags())),
        ]
    )
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def cache_file() -> Path:
    return paths.cache_dir() / "cpu-probe.json"


def _cached_or_probe() -> bool:
    key = cache_key()
    cached = _read_cache()
    if key in cached:
        return bool(cached[key]["extra_bufts"])
    ok, detail = run_probe()
    cached[key] = {"extra_bufts": ok, "detail": detail, "cpu": machine.cpu_name()}
    try:
        files.write_private_json(cache_file(), cached)
    except OSError as exc:
        log.warning("Could not cache the CPU probe's answer: %s", exc)
    return ok


def _read_cache() -> dict[str, dict[str, object]]:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_probe() -> tuple[bool, str]:
    """Load and decode a tiny quantized model with extra buffer types in a child process."""
    with tempfile.TemporaryDirectory(prefix="assistant-probe-") as tmp:
        model = write_probe_model(Path(tmp) / "probe-q8_0.gguf")
        try:
            proc = subprocess.run(
                assistant_command("--cpu-probe", str(model)),
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT_S,
                env=os.environ.copy(),
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            log.warning("The CPU probe hung; using llama.cpp without extra buffer types")
            return False, "timed out"
    if proc.returncode == 0 and proc.stdout.strip().endswith("ok"):
        log.info("CPU probe: extra buffer types (AMX) work on this machine")
        return True, "ok"
    detail = _describe_exit(proc.returncode)
    log.warning(
        "CPU probe: llama.cpp %s with extra buffer types (AMX) on this CPU; they stay off. %s",
        detail,
        proc.stderr.strip()[-300:],
    )
    return False, detail


def _describe_exit(code: int) -> str:
    how = describe_exit(code)
    return f"died of {how}" if code < 0 else f"exited with {how}"


def write_probe_model(path: Path) -> Path:
    """A one-layer llama whose matrices are Q8_0 with AMX-friendly shapes (256 wide)."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType
    from gguf.quants import quantize

    # 256 byte tokens and 32 merges: a vocabulary llama.cpp's BPE accepts, 288 rows (AMX
    # wants multiples of 32).
    letters = "etaoinshrdlucmfw"
    merges = [(a, b) for a in letters[:4] for b in letters[:8]]
    tokens = [_byte_char(b) for b in range(256)] + [a + b for a, b in merges]
    n_embd, n_ff, n_head, n_vocab = 256, 512, 4, len(tokens)
    rng = np.random.default_rng(0)
    w = GGUFWriter(str(path), "llama")
    w.add_name("CPU probe")
    w.add_file_type(LlamaFileType.MOSTLY_Q8_0)
    w.add_context_length(256)
    w.add_embedding_length(n_embd)
    w.add_block_count(1)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([int(TokenType.NORMAL)] * n_vocab)
    w.add_token_merges([f"{a} {b}" for a, b in merges])
    w.add_eos_token_id(0)
    w.add_bos_token_id(0)

    def q8(rows: int, cols: int) -> np.ndarray:
        data = (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)
        return quantize(data, GGMLQuantizationType.Q8_0)

    def add_q8(name: str, rows: int, cols: int) -> None:
        w.add_tensor(name, q8(rows, cols), raw_dtype=GGMLQuantizationType.Q8_0)

    w.add_tensor(
        "token_embd.weight", (rng.standard_normal((n_vocab, n_embd)) * 0.02).astype(np.float32)
    )
    w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    add_q8("output.weight", n_vocab, n_embd)
    w.add_tensor("blk.0.attn_norm.weight", np.ones(n_embd, np.float32))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(n_embd, np.float32))
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        add_q8(f"blk.0.{name}.weight", n_embd, n_embd)
    add_q8("blk.0.ffn_gate.weight", n_ff, n_embd)
    add_q8("blk.0.ffn_up.weight", n_ff, n_embd)
    add_q8("blk.0.ffn_down.weight", n_embd, n_ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _byte_char(b: int) -> str:
    """GPT-2's printable stand-in for byte ``b`` (what "gpt2" vocabularies store)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    if b in printable:
        return chr(b)
    return chr(256 + sum(1 for x in range(b) if x not in printable))


def run_child(model: str) -> int:
    """Load ``model`` with extra buffer types, decode 64 tokens then one; print ok."""
    import llama_cpp

    from assistant.engine import crash_injection
    from assistant.hardware import backends

    backends.ensure_loaded()
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = 0
    params.use_extra_bufts = True
    handle = llama_cpp.llama_model_load_from_file(model.encode(), params)
    if not handle:
        print("load failed")
        return 2
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = 256
    cparams.n_batch = cparams.n_ubatch = 64
    cparams.n_threads = cparams.n_threads_batch = max(2, machine.math_cores())
    ctx = llama_cpp.llama_init_from_model(handle, cparams)
    if not ctx:
        print("context failed")
        return 2
    crash_injection.maybe_crash("probe")
    for n, start in ((64, 0), (1, 64)):
        batch = llama_cpp.llama_batch_init(n, 0, 1)
        for i in range(n):
            batch.token[i] = (start + i) % 256
            batch.pos[i] = start + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == n - 1
        batch.n_tokens = n
        result = llama_cpp.llama_decode(ctx, batch)
        llama_cpp.llama_batch_free(batch)
        if result != 0:
            print(f"decode failed ({result})")
            return 2
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(run_child(sys.argv[1]))
