"""A fake engine process for fast GUI tests: it speaks the engine's protocol, and runs no model.

The app starts it exactly as it starts the real one (the supervisor runs ``python -m
tests.fake_engine serve --supervised ...``, see ``use_fake_engine``): JSON lines on stdout
(``listening``), the key in the environment, exit when stdin closes. Over HTTP it answers what
the app asks: ``/health``, ``/v1/models``, ``/v1/assistant/load`` (streamed progress, then the
loaded model read from the GGUF's real header), ``/unload``, ``/cancel``, ``/status`` and
streamed ``/v1/chat/completions``. So nothing of ours is mocked: the app's client, worker,
supervisor and controller run as they do with llama.cpp.

A reply is Latin filler, one word per token, each after ``ASSISTANT_FAKE_TOKEN_DELAY`` seconds
(default 0.002), up to ``max_tokens``: like the tiny random-weight test models, it never ends by
itself. A history longer than the context loses its oldest turns, reported as trimmed. Every
chat request's body is appended to the JSON-lines file ``ASSISTANT_FAKE_ENGINE_LOG`` when set,
so that tests can assert on what the engine was sent (messages, sampling settings).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

KEY_ENV = "ASSISTANT_ENGINE_KEY"
LOG_ENV = "ASSISTANT_FAKE_ENGINE_LOG"
DELAY_ENV = "ASSISTANT_FAKE_TOKEN_DELAY"


def use_fake_engine(monkeypatch: pytest.MonkeyPatch, log: Path | None = None) -> None:
    """Make engines started in this test process the fake one (the supervisor runs it)."""
    from assistant.engine import supervisor

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
        self.delay = float(os.environ.get(DELAY_ENV, "0.002"))
        self.log = os.environ.get(LOG_ENV)

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, Response, StreamingResponse
        from starlette.routing import Route

        def authorised(request: Any) -> bool:
            return request.headers.get("authorization", "") == f"Bearer {self.key}"

        def refused() -> JSONResponse:
            return JSONResponse({"error": {"message": "Invalid API key", "type": "auth"}}, 401)

        async def health(_request: Any) -> JSONResponse:
            name = Path(self.loaded["path"]).name if self.loaded else None
            return JSONResponse({"status": "ok", "model": name})

        async def models(request: Any) -> JSONResponse:
            if not authorised(request):
                return refused()
            from assistant import paths

            names = sorted(p.name for p in paths.models_dir().glob("*.gguf"))
            data = [{"id": n, "object": "model", "owned_by": "assistant"} for n in names]
            return JSONResponse({"object": "list", "data": data})

        async def status(request: Any) -> JSONResponse:
            if not authorised(request):
                return refused()
            return JSONResponse({"loaded": self.loaded, "running": 0, "requests": []})

        async def unload(request: Any) -> JSONResponse:
            if not authorised(request):
                return refused()
            self.loaded = None
            return JSONResponse({"unloaded": True})

        async def cancel(request: Any) -> JSONResponse:
            if not authorised(request):
                return refused()
            self.cancelled.add(str((await request.json()).get("id", "")))
            return JSONResponse({"cancelled": True})

        async def metrics(_request: Any) -> Response:
            return Response("# fake engine\n", media_type="text/plain")

        async def load(request: Any) -> Response:
            if not authorised(request):
                return refused()
            body = await request.json()
            from assistant.errors import AssistantError

            try:
                loaded: dict[str, Any] = self._load(
                    str(body.get("model", "")), int(body.get("n_ctx") or 0)
                )
            except FileNotFoundError as exc:
                error = {"message": str(exc), "type": "invalid_request_error"}
                return JSONResponse({"error": error | {"code": "model_not_found"}}, 404)
            except AssistantError as exc:  # not a GGUF, truncated: what the real engine says
                loaded = {"error": {"message": str(exc), "type": "model_error"}}

            async def events() -> AsyncIterator[bytes]:
                for fraction in (0.25, 0.5, 1.0):
                    yield _sse({"progress": fraction})
                    await asyncio.sleep(0.01)
                yield _sse(loaded)
                yield b"data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        async def chat(request: Any) -> Response:
            if not authorised(request):
                return refused()
            body = await request.json()
            if self.log:
                with open(self.log, "a", encoding="utf-8") as f:
                    f.write(json.dumps(body) + "\n")
            if self.loaded is None:
                error = {"message": "No model is loaded.", "type": "invalid_request_error"}
                return JSONResponse({"error": error}, 400)
            request_id = request.headers.get("x-request-id", "")
            return StreamingResponse(
                self._reply(body, request_id, request), media_type="text/event-stream"
            )

        return Starlette(
            routes=[
                Route("/health", health),
                Route("/metrics", metrics),
                Route("/v1/models", models),
                Route("/v1/assistant/status", status),
                Route("/v1/assistant/load", load, methods=["POST"]),
                Route("/v1/assistant/unload", unload, methods=["POST"]),
                Route("/v1/assistant/cancel", cancel, methods=["POST"]),
                Route("/v1/chat/completions", chat, methods=["POST"]),
            ]
        )

    def _load(self, model: str, n_ctx: int) -> dict[str, Any]:
        from assistant import paths
        from assistant.chat_format import ChatFormat
        from assistant.gguf_info import read_gguf_info

        path = Path(model)
        if not path.is_absolute():
            path = paths.models_dir() / model
        if not path.is_file():
            raise FileNotFoundError(f"The model file {path} does not exist.")
        started = time.perf_counter()
        info = read_gguf_info(path)
        loaded = {
            "path": str(path),
            "quantization": info.quantization,
            "n_layers": info.n_layers,
            "n_ctx": n_ctx or self.default_ctx,
            "n_gpu_layers": 0,
            "backend": "CPU",
            "backend_note": "fake engine",
            "template_note": ChatFormat(info.chat_template).note,
            "load_seconds": time.perf_counter() - started,
            "n_slots": 1,
        }
        self.loaded = loaded
        return {"loaded": loaded}

    async def _reply(
        self, body: dict[str, Any], request_id: str, request: Any
    ) -> AsyncIterator[bytes]:
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
        for i in range(limit):
            word = _FILLER[i % len(_FILLER)]
            if request_id in self.cancelled or await request.is_disconnected():
                return  # the client stopped it: no finish, as the real engine
            await asyncio.sleep(self.delay)
            if first_at is None:
                first_at = time.perf_counter()
            sent.append(word)
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


_FILLER = [
    (" " if i else "") + w
    for i, w in enumerate(
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
        "incididunt ut labore et dolore magna aliqua.".split()
    )
]


def _sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("--supervised", action="store_true")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ctx", type=int, default=4096)
    args, _ = parser.parse_known_args(argv)
    import uvicorn

    engine = FakeEngine(os.environ.get(KEY_ENV, ""), args.ctx)
    sock = socket.socket()
    sock.bind((args.host, args.port))
    sock.listen(64)
    url = f"http://{args.host}:{sock.getsockname()[1]}"

    def exit_when_stdin_closes() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)

    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(json.dumps({"event": "listening", "url": url, "pid": os.getpid(), "build_key": "fake"}),
          flush=True)  # fmt: skip
    config = uvicorn.Config(engine.app(), log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
