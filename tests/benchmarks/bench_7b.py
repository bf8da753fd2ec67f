"""A 7B-class model at its real sizes, against llama.cpp's own tools on the same file.

No 7B download is reachable here, so the script writes, once, a GGUF with the dimensions of
Qwen2.5-7B (qwen2 architecture: 28 layers, 3,584 wide, 28 query and 4 KV heads of 128, a
feed-forward of 18,944, a 152,064-token vocabulary, an untied output head) and random weights
in Q4_0 blocks (4.3 GB; the real Q4_0 file is 4.4 GB). The text it writes is gibberish; the
work per token is a 7B model's.

Printed, with the CPU:
- load time: ``assistant serve`` (process start to the model loaded, through its HTTP load
  request) against ``llama-server`` (process start to ``/health`` answering);
- memory: what llama.cpp allocated for the model at that context (its own account of each
  buffer; the mapped file aside, whose pages are page cache once the CPU backend has repacked
  the weights) against the fit estimate (goal: within 10%), and the resident memory of
  ``assistant serve`` and ``llama-server`` after a reply, anonymous and file-backed;
- prompt and decode tokens/s of ``assistant serve`` (its ``/v1/completions`` timings) against
  ``llama-bench`` on the same file, threads and prompt length (goal: at least 0.97);
- with ``--vulkan-modules DIR`` (a Vulkan module, installers/gpu_module.sh) on a machine where
  ggml sees a Vulkan device (``GGML_VK_VISIBLE_DEVICES=0`` for lavapipe): the layer split the
  fit estimate chose, and the device memory llama.cpp allocated against the estimate.

llama.cpp's tools are built from the pinned sdist as llama.cpp's README builds them for the CPU
at hand (native)::

    cmake -S build/llama-src/vendor/llama.cpp -B build/llama-tools -DLLAMA_BUILD_UI=OFF \\
        -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF
    cmake --build build/llama-tools -j2 --target llama-bench llama-server

    python tests/benchmarks/bench_7b.py --tools build/llama-tools/bin [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.bench_server import free_port  # noqa: E402
from tests.benchmarks.cpu import cpu_line  # noqa: E402

# Qwen2.5-7B's shape (config.json of Qwen/Qwen2.5-7B-Instruct).
N_LAYERS, N_EMBD, N_HEAD, N_HEAD_KV, HEAD_DIM, N_FF, N_VOCAB = 28, 3584, 28, 4, 128, 18944, 152064
CONTEXT = 32768
Q4_0_BLOCK, Q4_0_BYTES = 32, 18  # 32 weights: an f16 scale and 16 bytes of 4-bit values


def write_model(path: Path) -> Path:
    """Write the 7B-shaped Q4_0 GGUF (once: an existing file is kept)."""
    from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType

    from tests.tinymodel import _MERGES, CHATML_TEMPLATE, vocabulary

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens, types = vocabulary()
    tokens += [f"<unused{i}>" for i in range(N_VOCAB - len(tokens))]
    types += [int(TokenType.UNUSED)] * (N_VOCAB - len(types))
    eos = tokens.index("<|im_end|>")
    tmp = path.with_suffix(".tmp")
    w = GGUFWriter(tmp, "qwen2")
    w.add_name("Qwen2.5-7B shape, random Q4_0 weights")
    w.add_file_type(LlamaFileType.MOSTLY_Q4_0)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYERS)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_freq_base(1_000_000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([f"{a} {b}" for a, b in _MERGES])
    w.add_eos_token_id(eos)
    w.add_bos_token_id(eos)
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML_TEMPLATE)

    tensors: list[tuple[str, tuple[int, ...], bool]] = [
        ("token_embd.weight", (N_VOCAB, N_EMBD), True)
    ]
    kv = N_HEAD_KV * HEAD_DIM
    for i in range(N_LAYERS):
        b = f"blk.{i}."
        tensors += [
            (b + "attn_norm.weight", (N_EMBD,), False),
            (b + "attn_q.weight", (N_EMBD, N_EMBD), True),
            (b + "attn_q.bias", (N_EMBD,), False),
            (b + "attn_k.weight", (kv, N_EMBD), True),
            (b + "attn_k.bias", (kv,), False),
            (b + "attn_v.weight", (kv, N_EMBD), True),
            (b + "attn_v.bias", (kv,), False),
            (b + "attn_output.weight", (N_EMBD, N_EMBD), True),
            (b + "ffn_norm.weight", (N_EMBD,), False),
            (b + "ffn_gate.weight", (N_FF, N_EMBD), True),
            (b + "ffn_up.weight", (N_FF, N_EMBD), True),
            (b + "ffn_down.weight", (N_EMBD, N_FF), True),
        ]
    tensors += [
        ("output_norm.weight", (N_EMBD,), False),
        ("output.weight", (N_VOCAB, N_EMBD), True),
    ]

    def nbytes(shape: tuple[int, ...], quantized: bool) -> int:
        count = int(np.prod(shape))
        return count // Q4_0_BLOCK * Q4_0_BYTES if quantized else count * 4

    for name, shape, quantized in tensors:
        if quantized:  # rows, then bytes per row: what gguf expects for raw quantized data
            raw = (shape[0], shape[1] // Q4_0_BLOCK * Q4_0_BYTES)
            w.add_tensor_info(
                name, raw, np.dtype(np.uint8), nbytes(shape, True), GGMLQuantizationType.Q4_0
            )
        else:
            w.add_tensor_info(name, shape, np.dtype(np.float32), nbytes(shape, False))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(0)
    scale = np.array([0.02 / 8], dtype=np.float16).view(np.uint8)  # weights of about +-0.02
    for name, shape, quantized in tensors:
        if not quantized:
            w.write_tensor_data(
                np.ones(shape, dtype=np.float32)
                if "norm" in name
                else rng.normal(0, 0.02, shape).astype(np.float32)
            )
            continue
        blocks = rng.integers(0, 256, (shape[0], shape[1] // Q4_0_BLOCK, Q4_0_BYTES), np.uint8)
        blocks[:, :, 0:2] = scale
        w.write_tensor_data(blocks.reshape(shape[0], -1))
    w.close()
    tmp.replace(path)
    return path


def memory(pid: int) -> dict[str, int]:
    """Resident memory of a process: anonymous (what it must keep) and file-backed (the mmapped
    model's pages, which the kernel can drop and read again)."""
    fields = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) * 1024
    return fields


def post(url: str, body: dict, key: str = "", timeout: float = 3600) -> dict:
    """POST a JSON body; the last event of a stream, or the JSON answer."""
    request = urllib.request.Request(
        url,
        json.dumps(body).encode(),
        {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode()
    events = [
        json.loads(line[5:])
        for line in text.splitlines()
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]")
    ]
    return events[-1] if events else json.loads(text)


def wait_health(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


PROMPT_TOKENS, GEN_TOKENS = 128, 32


def prompt_text(round_: int) -> str:
    """PROMPT_TOKENS tokens: one byte is one token here (the vocabulary has hardly any merges),
    and each round's differs from the first byte, so no cached prefix shortens it."""
    return "".join(chr(ord("A") + (i + round_) % 26) for i in range(PROMPT_TOKENS))


class AssistantServe:
    """`assistant serve` in a process of its own, one slot, the model loaded through HTTP."""

    def __init__(self, model: Path, threads: int, n_ctx: int, env: dict[str, str]):
        self.key = "bench-key"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        home = tempfile.mkdtemp(prefix="bench-7b-home-")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", "serve", "--port", str(port), "--threads",
             str(threads), "--slots", "1", "--api-key", self.key, "--no-announce"],
            env={**env, "ASSISTANT_HOME": home},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_health(self.url, self.proc)
        body = {"model": str(model), "n_ctx": n_ctx, "n_gpu_layers": -1}
        self.loaded = post(self.url + "/v1/assistant/load", body, self.key)
        self.load_s = time.perf_counter() - started

    def run(self, round_: int) -> tuple[float, float, int]:
        """(prompt tokens/s, decode tokens/s, prompt tokens) of one fresh completion."""
        body = {"prompt": prompt_text(round_), "max_tokens": GEN_TOKENS, "ignore_eos": True,
                "temperature": 0}  # fmt: skip
        timings = post(self.url + "/v1/completions", body, self.key)["timings"]
        return timings["prompt_per_second"], timings["predicted_per_second"], timings["prompt_n"]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def run_llama_server(tools: Path, model: Path, threads: int, n_ctx: int) -> dict:
    """llama-server: process start to /health answering, and its memory after a reply."""
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(tools / "llama-server"), "-m", str(model), "--port", str(port), "-t", str(threads),
         "-c", str(n_ctx), "-np", "1", "-ngl", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_health(f"http://127.0.0.1:{port}", proc)
        load_s = time.perf_counter() - started
        post(
            f"http://127.0.0.1:{port}/v1/completions",
            {"prompt": prompt_text(0), "max_tokens": 4, "temperature": 0},
        )
        return {"load_s": load_s, **memory(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(30)


def llama_bench(tools: Path, model: Path, threads: int, prompt: int, gen: int) -> dict:
    """One llama-bench test (a prompt of ``prompt`` tokens, or ``gen`` generated ones)."""
    out = subprocess.run(
        [str(tools / "llama-bench"), "-m", str(model), "-t", str(threads), "-p", str(prompt),
         "-n", str(gen), "-r", "1", "-ngl", "0", "-o", "json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)[0]


def load_in_child(model: Path, n_ctx: int, env: dict[str, str]) -> dict:
    """Load once in a fresh process, as the engine does: the fit estimate, the layers placed,
    and llama.cpp's own account of every buffer it allocated ({(buffer, kind): bytes})."""
    code = (
        "import json, logging, sys\n"
        "logging.getLogger('llama_cpp').addHandler(logging.StreamHandler(sys.stderr))\n"
        "logging.getLogger('llama_cpp').setLevel(logging.DEBUG)\n"
        "from assistant.engine.llama import Engine\n"
        "from assistant.hardware import machine\n"
        "from assistant.models import fit\n"
        "from assistant.models.gguf_info import read_gguf_info\n"
        f"path = {str(model)!r}\n"
        f"est = fit.estimate(read_gguf_info(path), {n_ctx}, machine.detect())\n"
        f"loaded = Engine().load(path, n_ctx={n_ctx}, n_gpu_layers=-1, n_slots=1)\n"
        "print('RESULT', json.dumps({'layers': loaded.n_gpu_layers, 'note': loaded.backend_note,"
        " 'est_layers': est.n_gpu_layers, 'est_gpu': est.gpu_bytes, 'est': est.total_bytes,"
        " 'detail': est.detail}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1800
    )
    result = next(
        (json.loads(line[7:]) for line in done.stdout.splitlines() if line.startswith("RESULT ")),
        None,
    )
    if result is None:
        raise RuntimeError(f"the load failed: {done.stderr[-2000:]}")
    # "load_tensors:   CPU_REPACK model buffer size =  3792.80 MiB", "... KV buffer size = ..."
    found = re.findall(
        r"(\S+)\s+(model|KV|compute|output) buffer size =\s*([\d.]+) MiB", done.stderr
    )
    result["buffers"] = {(name, kind): float(mib) * 2**20 for name, kind, mib in found}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tools",
        type=Path,
        required=True,
        help="folder with llama-bench and llama-server (built natively)",
    )
    parser.add_argument(
        "--model", type=Path, default=ROOT / "build" / "bench" / "qwen2.5-7b-shape-q4_0.gguf"
    )
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--vulkan-modules", type=Path)
    args = parser.parse_args(argv)

    from assistant.hardware import machine
    from assistant.models import fit
    from assistant.models.gguf_info import read_gguf_info

    print(cpu_line())
    started = time.perf_counter()
    model = write_model(args.model)
    print(
        f"model: {model} ({model.stat().st_size / 1e9:.2f} GB; written or found in "
        f"{time.perf_counter() - started:.0f} s)"
    )
    threads = machine.math_cores()
    env = {k: v for k, v in os.environ.items() if k != "ASSISTANT_GPU_MODULES"}
    cpu_env = {**env, "GGML_VK_VISIBLE_DEVICES": ""}  # the CPU figures: no device

    ours = AssistantServe(model, threads, args.ctx, cpu_env)
    try:
        print(f"assistant serve: {ours.loaded['loaded']['backend_note']}")
        # The two take turns, round after round: on a shared machine, speeds drift.
        pp, tg, ref_pp, ref_tg = [], [], [], []
        prompt_n = 0
        for round_ in range(args.runs):
            a_pp, a_tg, prompt_n = ours.run(round_ + 1)
            pp.append(a_pp)
            tg.append(a_tg)
            row = llama_bench(args.tools, model, threads, PROMPT_TOKENS, 0)
            ref_pp.append(row["avg_ts"])
            ref_tg.append(llama_bench(args.tools, model, threads, 0, GEN_TOKENS)["avg_ts"])
        ours_memory = memory(ours.proc.pid)
    finally:
        ours.close()
    print(
        f"llama-bench build {row.get('build_commit')}, {row.get('backends')}, "
        f"{row.get('cpu_info')}, {threads} threads; {args.runs} alternating rounds, medians"
    )
    server = run_llama_server(args.tools, model, threads, args.ctx)

    hw = machine.detect()
    est = fit.estimate(read_gguf_info(model), args.ctx, hw, weights_bytes=model.stat().st_size)
    med = statistics.median
    print(
        f"\nload, process start to ready: assistant serve {ours.load_s:.1f} s, "
        f"llama-server {server['load_s']:.1f} s (ratio {server['load_s'] / ours.load_s:.2f})"
    )
    gib = 2**30
    cpu = load_in_child(model, args.ctx, cpu_env)
    mapped = sum(v for (name, _), v in cpu["buffers"].items() if name == "CPU_Mapped")
    needed = sum(v for (name, _), v in cpu["buffers"].items() if name != "CPU_Mapped")
    parts = ", ".join(f"{name} {kind} {v / gib:.2f}" for (name, kind), v in cpu["buffers"].items())
    print(f"memory, {args.ctx:,}-token context; fit estimate {est.total_bytes / gib:.2f} GiB:")
    print(f"  llama.cpp's buffers (GiB): {parts}")
    print(
        f"  allocated, the mapped file aside: {needed / gib:.2f} GiB, ratio to the estimate "
        f"{needed / est.total_bytes:.3f} (goal 0.90-1.10); the file stays mapped "
        f"({mapped / gib:.2f} GiB), but once repacked its pages are page cache the kernel may drop"
    )
    print(
        f"  resident after a reply: assistant serve {ours_memory['RssAnon'] / gib:.2f} GiB "
        f"anonymous + {ours_memory['RssFile'] / gib:.2f} GiB file-backed; llama-server "
        f"{server['RssAnon'] / gib:.2f} + {server['RssFile'] / gib:.2f} GiB (the KV cache "
        "counts only where written)"
    )
    print(
        f"prompt ({prompt_n} tokens): assistant serve {med(pp):.2f} tok/s, llama-bench "
        f"{med(ref_pp):.2f} tok/s, ratio {med(pp) / med(ref_pp):.3f} (goal >= 0.97)"
    )
    print(
        f"decode ({GEN_TOKENS} tokens): assistant serve {med(tg):.2f} tok/s, llama-bench "
        f"{med(ref_tg):.2f} tok/s, ratio {med(tg) / med(ref_tg):.3f} (goal >= 0.97)"
    )
    if args.vulkan_modules:
        print("\nVulkan (GGML_VK_VISIBLE_DEVICES picks the device):")
        vk = load_in_child(
            model, args.ctx, {**env, "ASSISTANT_GPU_MODULES": str(args.vulkan_modules)}
        )
        device = sum(v for (name, _), v in vk["buffers"].items() if name.startswith("Vulkan0"))
        print(f"  fit estimate: {vk['detail']}")
        print(f"  layers on the device: {vk['layers']} (estimate {vk['est_layers']}); {vk['note']}")
        if device:
            print(
                f"  device memory llama.cpp allocated: {device / gib:.2f} GiB, estimate "
                f"{vk['est_gpu'] / gib:.2f} GiB, ratio {device / vk['est_gpu']:.3f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
