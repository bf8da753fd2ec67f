"""A fake engine process for fast GUI tests: it speaks the engine's protocol, and runs no model.

The app starts it exactly as it starts the real one (the supervisor runs ``python -m
tests.fake_engine serve --supervised ...``, see ``use_fake_engine``): JSON lines on stdout
(``listening``), the key in the environment, exit when stdin closes. Over HTTP it answers what
the app asks: ``/health``, ``/v1/models``, ``/v1/assistant/load`` (streamed progress, then the
loaded model read from the GGUF's real header), ``/unload``, ``/cancel``, ``/status`` and
streamed ``/v1/chat/completions``. So nothing of ours is mocked: the app's client, workers,
supervisor and controllers run as they do with llama.cpp. Its HTTP face is the standard
library's (a process starts in about 0.1 s, a third of what uvicorn and Starlette took).

A reply is Latin filler, one word per token, each after ``ASSISTANT_FAKE_TOKEN_DELAY`` seconds
(default 0.001), up to ``max_tokens``: like the tiny random-weight test models, it never ends by
itself. A history longer than the context loses its oldest turns, reported as trimmed. Every
chat request's body is appended to the JSON-lines file ``ASSISTANT_FAKE_ENGINE_LOG`` when set,
so that tests can assert on what the engine was sent (messages, sampling settings).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

KEY_ENV = "ASSISTANT_ENGINE_KEY"
LOG_ENV = "ASSISTANT_FAKE_ENGINE_LOG"
DELAY_ENV = "ASSISTANT_FAKE_TOKEN_DELAY"
# A reply to write instead of the filler (Markdown, say), a word (or run of spaces) a token.
REPLY_ENV = "ASSISTANT_FAKE_REPLY"
# And a thought to think first, for a model whose template opens <think>.
THOUGHT_ENV = "ASSISTANT_FAKE_THOUGHT"


class _ForGood:
    """monkeypatch's setattr and setenv, for scripts: changed for the rest of the process."""

    def setattr(self, target: object, name: str, value: object) -> None:
        setattr(target, name, value)

    def setenv(self, name: str, value: str) -> None:
        os.environ[name] = value


def use_fake_engine_here(log: Path | None = None) -> None:
    """use_fake_engine, outside pytest (benchmarks, the screenshot script)."""
    use_fake_engine(_ForGood(), log)  # type: ignore[arg-type]


def use_fake_engine(monkeypatch: pytest.MonkeyPatch, log: Path | None = None) -> None:
    """Make engines started in this test process the fake one (the supervisor runs it)."""
    from assistant.clients import supervisor

    def command(*args: str) -> list[str]:
        return [sys.executable, "-m", "tests.fake_engine", *args]

    monkeypatch.setattr(supervisor, "assistant_command", command)
    root = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    )
    if log is not None:
        monkeypatch.setenv(LOG_ENV, str(log))


def requests_received(log: Path) -> list[dict[str, Any]]:
    """The chat requests the fake engine was sent, oldest first."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


# -- the process ------------------------------------------------------------------------------


class FakeEngine:
    def __init__(self, key: str, default_ctx: int):
        self.key = key
        self.default_ctx = default_ctx
        self.loaded: dict[str, Any] | None = None
        self.cancelled: set[str] = set()
        self.delay = float(os.environ.get(DELAY_ENV, "0.001"))
        scripted = os.environ.get(REPLY_ENV)
        self.script = re.findall(r"\s+|\S+", scripted) if scripted else None
        self.log = os.environ.get(LOG_ENV)
        self.thinks = False
        self.replies = 0

    # Each route answers (status, JSON body) or an iterator of SSE events (bytes).
    def route(self, method: str, path: str, headers: Any, body: dict[str, Any]) -> Answer:
        if (method, path) == ("GET", "/health"):
            name = Path(self.loaded["path"]).name if self.loaded else None
            return 200, {"status": "ok", "model": name}
        if (method, path) == ("GET", "/metrics"):
            return 200, "# fake engine\n"
        if headers.get("authorization", "") != f"Bearer {self.key}":
            return 401, {"error": {"message": "Invalid API key", "type": "auth"}}
        if (method, path) == ("GET", "/v1/models"):
            from assistant import paths

            names = sorted(p.name for p in paths.models_dir().glob("*.gguf"))
            data = [{"id": n, "object": "model", "owned_by": "assistant"} for n in names]
            return 200, {"object": "list", "data": data}
        if (method, path) == ("GET", "/v1/assistant/status"):
            return 200, {"loaded": self.loaded, "running": 0, "requests": []}
        if (method, path) == ("POST", "/v1/assistant/unload"):
            self.loaded = None
            return 200, {"unloaded": True}
        if (method, path) == ("POST", "/v1/assistant/cancel"):
            self.cancelled.add(str(body.get("id", "")))
            return 200, {"cancelled": True}
        if (method, path) == ("POST", "/v1/assistant/load"):
            return self._load_events(body)
        if (method, path) == ("POST", "/v1/chat/completions"):
            if self.log:
                with open(self.log, "a", encoding="utf-8") as f:
                    f.write(json.dumps(body) + "\n")
            if self.loaded is None:
                error = {"message": "No model is loaded.", "type": "invalid_request_error"}
                return 400, {"error": error}
            return self._reply(body, headers.get("x-request-id", ""))
        return 404, {"error": {"message": f"No route {method} {path}", "type": "not_found"}}

    def _load_events(self, body: dict[str, Any]) -> Answer:
        from assistant.errors import AssistantError

        try:
            loaded = self._load(str(body.get("model", "")), int(body.get("n_ctx") or 0))
        except FileNotFoundError as exc:
            error = {"message": str(exc), "type": "invalid_request_error"}
            return 404, {"error": error | {"code": "model_not_found"}}
        except AssistantError as exc:  # not a GGUF, truncated: what the real engine says
            loaded = {"error": {"message": str(exc), "type": "model_error"}}

        def events() -> Iterator[bytes]:
            for fraction in (0.25, 0.5, 1.0):
                yield _sse({"progress": fraction})
                time.sleep(0.01)
            yield _sse(loaded)
            yield b"data: [DONE]\n\n"

        return events()

    def _load(self, model: str, n_ctx: int) -> dict[str, Any]:
        from assistant import paths
        from assistant.engine.chat_format import ChatFormat
        from assistant.models.gguf_info import read_gguf_info

        path = Path(model)
        if not path.is_absolute():
            path = paths.models_dir() / model
        if not path.is_file():
            raise FileNotFoundError(f"The model file {path} does not exist.")
        started = time.perf_counter()
        info = read_gguf_info(path)
        chat_format = ChatFormat(info.chat_template)
        # A model whose template opens <think> thinks before each answer, as our engine sends
        # it: reasoning_content deltas first.
        self.thinks = chat_format.opens_thinking
        loaded = {
            "path": str(path),
            "quantization": info.quantization,
            "n_layers": info.n_layers,
            "n_ctx": n_ctx or self.default_ctx,
            "n_gpu_layers": 0,
            "backend": "CPU",
            "backend_note": "fake engine",
            "template_note": chat_format.note,
            "load_seconds": time.perf_counter() - started,
            "n_slots": 1,
        }
        self.loaded = loaded
        return {"loaded": loaded}

    def _reply(self, body: dict[str, Any], request_id: str) -> Iterator[bytes]:
        messages = list(body.get("messages") or [])
        limit = int(body.get("max_tokens") or 1024)
        n_ctx = int(self.loaded["n_ctx"]) if self.loaded else self.default_ctx

        def tokens(ms: list[dict[str, Any]]) -> int:
            return sum(4 + len(str(m.get("content", "")).split()) for m in ms)

        trimmed = 0
        first = 1 if messages and messages[0].get("role") == "system" else 0
        while tokens(messages) + limit > n_ctx and len(messages) > first + 1:
            del messages[first]  # the oldest turn goes first, as the real engine trims
            trimmed += 1
        prompt_tokens = tokens(messages)
        limit = max(0, min(limit, n_ctx - prompt_tokens))  # a full context ends it, too
        started = time.perf_counter()
        first_at: float | None = None
        sent: list[str] = []
        reason = "length"
        # Each reply starts a word further into the filler: two versions of a turn differ.
        self.replies += 1
        start = self.replies - 1
        if self.thinks:
            thought = os.environ.get(THOUGHT_ENV)
            for word in re.findall(r"\s+|\S+", thought) if thought else THOUGHT:
                if request_id in self.cancelled:
                    return
                time.sleep(self.delay)
                first_at = first_at or time.perf_counter()
                yield _sse({"choices": [{"index": 0, "delta": {"reasoning_content": word}}]})
        for i in range(limit):
            if self.script is not None:
                if i >= len(self.script):
                    reason = "stop"
                    break
                word = self.script[i]
            else:
                word = _FILLER[(i + start) % len(_FILLER)]
            if request_id in self.cancelled:
                return  # the client stopped it: no finish, as the real engine
            time.sleep(self.delay)
            if first_at is None:
                first_at = time.perf_counter()
            sent.append(word)
            # A client that went away makes this write fail: the reply ends there.
            yield _sse({"choices": [{"index": 0, "delta": {"content": word}}]})
        now = time.perf_counter()
        info = {
            "text": "".join(sent),
            "finish_reason": reason,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(sent),
            "cached_tokens": 0,
            "ttft_s": (first_at or now) - started,
            "duration_s": now - started,
            "tokens_per_s": len(sent) / max(now - started, 1e-6),
            "context_tokens": prompt_tokens + len(sent),
            "trimmed_messages": trimmed,
            "model_file": Path(self.loaded["path"]).name if self.loaded else "",
        }
        yield _sse({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}],
                    "assistant": info})  # fmt: skip
        yield b"data: [DONE]\n\n"


Answer = tuple[int, Any] | Iterator[bytes]


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive: JSON answers with a length, SSE streams chunked."""

    protocol_version = "HTTP/1.1"
    engine: FakeEngine  # set on the subclass main() makes

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet, like the real engine's access log in tests

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw.strip() else {}
        path = self.path.split("?", 1)[0]
        answer = self.engine.route(method, path, self.headers, body)
        try:
            if isinstance(answer, tuple):
                status, payload = answer
                text = isinstance(payload, str)
                data = payload.encode() if text else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "text/plain" if text else "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for event in answer:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading (Stop, or it quit)


# What a thinking model thinks (tests look for it where it must not be: in the next prompt).
THOUGHT = [(" " if i else "") + w for i, w in enumerate("Let me ponder this quietly.".split())]

_FILLER = [
    (" " if i else "") + w
    for i, w in enumerate(
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
        "incididunt ut labore et dolore magna aliqua.".split()
    )
]


def _sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()


def _import_load_modules() -> None:
    import assistant.engine.chat_format
    import assistant.models.gguf_info  # noqa: F401


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("--supervised", action="store_true")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ctx", type=int, default=4096)
    args, _ = parser.parse_known_args(argv)
    handler = type(
        "Handler", (_Handler,), {"engine": FakeEngine(os.environ.get(KEY_ENV, ""), args.ctx)}
    )
    server = ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True
    url = f"http://{args.host}:{server.server_address[1]}"

    def exit_when_stdin_closes() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)

    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(json.dumps({"event": "listening", "url": url, "pid": os.getpid(), "build_key": "fake"}),
          flush=True)  # fmt: skip
    # What a load needs, imported while the app takes in "listening" (on the other core).
    threading.Thread(target=_import_load_modules, daemon=True).start()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
