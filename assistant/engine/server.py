"""The engine's HTTP face: the OpenAI-compatible API on Starlette, served by uvicorn.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``POST /v1/embeddings``
(an embedding model beside the chat model), ``GET /v1/models``,
``GET /health`` (no key; 503 while a model loads), and our own ``POST /v1/assistant/load``
(progress as server-sent events), ``/v1/assistant/unload``, ``/v1/assistant/cancel`` and
``GET /v1/assistant/status``.

This thread never touches llama.cpp: it validates, authenticates and streams, and hands jobs to
the Runner. Text crosses from the inference thread through an outbox (handoff.py: one wake-up
of the loop for each burst of pieces) into an asyncio queue per request. A client that
disconnects, or cancels, sets the job's stop Event.

Many clients at once: the Runner batches them (see runner.py). ``GET /metrics`` gives the
figures in Prometheus' format; ``/v1/assistant/status`` lists the requests in flight. A full
queue answers 429 with ``Retry-After``.

Security (gate.py): every endpoint but ``/health`` wants a key (``Authorization: Bearer`` or
``X-Api-Key``, compared in constant time); a ``Host`` that is not a loopback name is refused (a
web page cannot reach us by DNS rebinding); no CORS headers unless the user allowed an origin.
There are two keys: the owner's (the app and the CLI that started or found this engine, whose
requests go ahead of queued API requests) and the Local API's, given to other apps.

Over 400 lines: one route per endpoint, each with its streaming and its errors; the key and Host
checks are gate.py, request validation is requests.py.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from assistant.engine import metrics
from assistant.engine.gate import LOOPBACK_NAMES, Gate
from assistant.engine.handoff import Outbox
from assistant.engine.requests import (
    ApiError,
    bad_request,
    integer_field,
    parse_embedding_input,
    parse_extension,
    parse_messages,
    parse_params,
    parse_tools,
)
from assistant.engine.runner import (
    EmbedJob,
    GenerateJob,
    LoadJob,
    Runner,
    UnloadJob,
    resolve_embedding_model,
    resolve_request_model,
)
from assistant.errors import AssistantError, EngineBusy, ModelError, RequestRejected
from assistant.hardware import machine
from assistant.models import library
from assistant.records import Completion, FinishReason
from assistant.tools import calls

log = logging.getLogger(__name__)

MAX_EMBEDDING_INPUTS = 2048  # as OpenAI


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


# --- the application -----------------------------------------------------------------------------


class EngineServer:
    """Builds the Starlette app around a Runner."""

    def __init__(self, runner: Runner, *, default_max_tokens: int = 1024):
        self.runner = runner
        self.default_max_tokens = default_max_tokens
        self.started = time.time()
        self._jobs: dict[str, GenerateJob] = {}
        self._outboxes: dict[asyncio.AbstractEventLoop, Outbox] = {}

    def app(
        self,
        *,
        api_key: str,
        allowed_hosts: frozenset[str] | None = LOOPBACK_NAMES,
        allowed_origins: frozenset[str] = frozenset(),
        owner_key: str = "",
    ) -> ASGIApp:
        routes = [
            Route("/health", self.health, methods=["GET"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/assistant/load", self.load, methods=["POST"]),
            Route("/v1/assistant/unload", self.unload, methods=["POST"]),
            Route("/v1/assistant/cancel", self.cancel, methods=["POST"]),
            Route("/v1/assistant/status", self.status, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]
        app = Starlette(
            routes=routes,
            exception_handlers={
                ApiError: lambda _request, exc: exc.response(),
                404: lambda _r, _e: ApiError(404, "No such endpoint.", "not_found").response(),
                405: lambda _r, _e: ApiError(
                    405, "Method not allowed.", "invalid_request_error"
                ).response(),
                Exception: _internal_error,
            },
        )
        return Gate(
            app,
            api_key=api_key,
            owner_key=owner_key,
            allowed_hosts=allowed_hosts,
            allowed_origins=allowed_origins,
        )

    # -- simple endpoints --------------------------------------------------------------------

    async def health(self, _request: Request) -> JSONResponse:
        if self.runner.loading:
            return JSONResponse({"status": "loading", "model": self.runner.loading}, 503)
        loaded = self.runner.loaded
        return JSONResponse({"status": "ok", "model": loaded.name if loaded else None})

    async def status(self, request: Request) -> JSONResponse:
        loaded = self.runner.loaded
        requests = list(self.runner.in_flight)
        if not _is_owner(request):
            # Other apps share one key: they see the load, not the ids that cancel requests.
            requests = [{k: v for k, v in r.items() if k != "id"} for r in requests]
        return JSONResponse(
            {
                "loaded": loaded.to_json() if loaded else None,
                "loading": self.runner.loading,
                "queued": self.runner.queued,
                "running": self.runner.running,
                "slots": self.runner.slots_total,
                "requests": requests,
                "build_key": self.runner.build_key,
                "config": self.runner.config.to_json(),
                "threads": self.runner.threads or machine.math_cores(),
            }
        )

    async def metrics(self, _request: Request) -> Response:
        return Response(self.runner.metrics.text(), media_type=metrics.CONTENT_TYPE)

    async def models(self, _request: Request) -> JSONResponse:
        loaded = self.runner.loaded
        names = [loaded.name] if loaded else []
        # File names only: reading every header would cost megabytes per model.
        for path in await asyncio.to_thread(_installed_files):
            if path.name not in names:
                names.append(path.name)
        created = int(self.started)
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": n, "object": "model", "created": created, "owned_by": "assistant"}
                    for n in names
                ],
            }
        )

    async def unload(self, _request: Request) -> JSONResponse:
        job = UnloadJob()
        self.runner.submit(job)
        await asyncio.wrap_future(job.future)
        return JSONResponse({"unloaded": True})

    async def cancel(self, request: Request) -> JSONResponse:
        body = await _json_body(request)
        job = self._jobs.get(str(body.get("id", "")))
        # The app's own requests are stopped by the app alone.
        if job is not None and job.interactive and not _is_owner(request):
            job = None
        if job is not None:
            job.stop.set()
        return JSONResponse({"cancelled": job is not None})

    # -- load, with progress -------------------------------------------------------------------

    async def load(self, request: Request) -> StreamingResponse:
        body = await _json_body(request)
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise bad_request("'model' must name a model file.", "model")
        try:
            path = resolve_request_model(name, self.runner.loaded)
        except ModelError as exc:
            raise ApiError(
                404, str(exc), "invalid_request_error", "model_not_found", "model"
            ) from None
        n_ctx = integer_field(body, "n_ctx", 0, 1 << 24, self.runner.default_ctx)
        layers = integer_field(body, "n_gpu_layers", -1, 100_000, self.runner.default_gpu_layers)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def progress(fraction: float) -> None:
            loop.call_soon_threadsafe(events.put_nowait, {"progress": round(fraction, 4)})

        job = LoadJob(path, int(n_ctx or 0), int(layers if layers is not None else -1), progress)
        self.runner.submit(job)

        def done(future: Any) -> None:
            exc = future.exception()
            if exc is None:
                event: dict[str, Any] = {"loaded": future.result().to_json()}
            else:
                message = str(exc) if isinstance(exc, AssistantError) else f"Load failed: {exc}"
                event = {"error": {"message": message, "type": "model_error"}}
            loop.call_soon_threadsafe(events.put_nowait, event)

        job.future.add_done_callback(done)

        async def stream() -> AsyncIterator[bytes]:
            while True:
                event = await events.get()
                yield _sse(event)
                if "progress" not in event:
                    yield b"data: [DONE]\n\n"
                    return

        return StreamingResponse(stream(), media_type="text/event-stream")

    # -- generation ----------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        body = await _json_body(request)
        messages = parse_messages(body)
        return await self._generate(request, body, messages=messages, prompt=None, chat=True)

    async def completions(self, request: Request) -> Response:
        body = await _json_body(request)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise bad_request("'prompt' must be a string.", "prompt")
        return await self._generate(request, body, messages=[], prompt=prompt, chat=False)

    async def embeddings(self, request: Request) -> JSONResponse:
        body = await _json_body(request)
        inputs = parse_embedding_input(body)
        if len(inputs) > MAX_EMBEDDING_INPUTS:
            raise bad_request(f"At most {MAX_EMBEDDING_INPUTS} inputs per request.", "input")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise bad_request("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
        dimensions = body.get("dimensions")
        if dimensions is not None and (
            isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
        ):
            raise bad_request("'dimensions' must be a positive integer.", "dimensions")
        name = body.get("model")
        if name is not None and not isinstance(name, str):
            raise bad_request("'model' must be a string.", "model")
        try:
            path = await asyncio.to_thread(resolve_embedding_model, name)
        except ModelError as exc:
            raise ApiError(
                404, str(exc), "invalid_request_error", "model_not_found", "model"
            ) from None
        truncate = body.get("truncate", False)
        if not isinstance(truncate, bool):
            raise bad_request("'truncate' must be true or false.", "truncate")
        # The app's questions go before indexing, and before other apps' requests; the app's
        # own indexing says "background".
        interactive = _is_owner(request) and body.get("priority") != "background"
        job = EmbedJob(path, inputs, interactive=interactive, truncate=truncate)
        self.runner.embed(job)
        try:
            result = await asyncio.wrap_future(job.future)
        except RequestRejected as exc:
            raise bad_request(str(exc), "input") from None
        except ModelError as exc:  # not an embedding model, or a damaged file
            raise ApiError(400, str(exc), "invalid_request_error", "model_not_supported",
                           "model") from None  # fmt: skip
        except AssistantError as exc:
            raise ApiError(500, str(exc), "server_error") from None
        vectors = result.vectors
        if dimensions is not None:
            # Matryoshka-trained models (nomic v1.5) may be cut short; renormalized, as OpenAI.
            if dimensions > vectors.shape[1]:
                raise bad_request(
                    f"'dimensions' must be between 1 and {vectors.shape[1]}.", "dimensions"
                )
            vectors = vectors[:, :dimensions]
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
                if encoding == "base64"
                else row.tolist(),
            }
            for i, row in enumerate(vectors)
        ]
        tokens = result.prompt_tokens
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": result.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    def _model_of(self, body: dict[str, Any]) -> Path | None:
        name = body.get("model")
        if name is None or name == "":
            if self.runner.loaded is None and not self.runner.loading:
                raise ApiError(
                    400, "No model is loaded; name one in 'model'.", "invalid_request_error"
                )
            return None
        if not isinstance(name, str):
            raise bad_request("'model' must be a string.", "model")
        try:
            return resolve_request_model(name, self.runner.loaded)
        except ModelError as exc:
            raise ApiError(
                404,
                f"The model '{name}' does not exist here. {exc}",
                "invalid_request_error",
                "model_not_found",
                "model",
            ) from None

    def _outbox(self, loop: asyncio.AbstractEventLoop) -> Outbox:
        """The outbox of this event loop (one in the engine; tests may run several)."""
        if loop not in self._outboxes:
            self._outboxes[loop] = Outbox(loop)
        return self._outboxes[loop]

    async def _generate(
        self,
        request: Request,
        body: dict[str, Any],
        *,
        messages: list[dict[str, str]],
        prompt: str | None,
        chat: bool,
    ) -> Response:
        params = parse_params(body, self.default_max_tokens)
        tools = parse_tools(body) if chat else None
        if tools is not None:
            # The engine holds the calls to a grammar in the model's own form, unless the
            # request brought a grammar of its own (a response_format).
            params = dataclasses.replace(params, tools=tools.to_json())
        model = self._model_of(body)
        ext = parse_extension(body)
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise bad_request("'stream' must be true or false.", "stream")
        options = body.get("stream_options") or {}
        if not isinstance(options, dict):
            raise bad_request("'stream_options' must be an object.", "stream_options")
        include_usage = bool(options.get("include_usage", False))

        loop = asyncio.get_running_loop()
        # (the delta's field, its text): "content", or "reasoning_content" for a chat reply's
        # thinking (as DeepSeek's API and llama-server send it); None ends the stream.
        pieces: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
        request_id = (request.headers.get("x-request-id") or "")[:64]
        if not request_id or request_id in self._jobs:
            request_id = uuid.uuid4().hex  # ids are never shared: a cancel stops one request
        owner = _is_owner(request)
        if not owner and (ext.get("kv_state") or ext.get("save_state")):
            # Saved KV caches hold the owner's conversations: theirs alone.
            raise bad_request("'assistant.kv_state' is for the app's own requests.", "assistant")

        outbox = self._outbox(loop)

        held = calls.CallStream() if tools is not None else None

        def on_text(piece: str) -> None:
            if held is not None:  # text that may be a tool call waits until it is known
                piece = held.feed(piece)
                if not piece:
                    return
            outbox.put(pieces, ("content", piece))

        def on_reasoning(piece: str) -> None:
            outbox.put(pieces, ("reasoning_content", piece))

        job = GenerateJob(
            messages=messages,
            params=params,
            model=model,
            prompt=prompt,
            truncate=bool(ext.get("truncate", False)),
            kv_state=ext.get("kv_state"),
            save_state=bool(ext.get("save_state", False)),
            on_text=on_text if stream else None,
            on_reasoning=on_reasoning if stream else None,
            interactive=owner,
            client=_client_label(request),
            id=request_id,
        )
        # Through the same outbox as the text: the end never overtakes the last pieces.
        job.future.add_done_callback(lambda _f: outbox.put(pieces, None))
        try:
            self.runner.submit(job)
        except EngineBusy as exc:
            error = ApiError(429, str(exc), "rate_limit_error", "engine_busy")
            error.headers = {"Retry-After": str(exc.retry_after)}
            raise error from None
        self._jobs[request_id] = job
        try:
            await _accepted_unless_disconnected(request, job)
        except asyncio.CancelledError:
            job.stop.set()
            self._jobs.pop(request_id, None)
            raise
        except RequestRejected as exc:
            self._jobs.pop(request_id, None)
            raise bad_request(str(exc), "messages" if chat else "prompt") from None
        except ModelError as exc:
            self._jobs.pop(request_id, None)
            raise ApiError(400, str(exc), "invalid_request_error", "model_not_loaded") from None
        except AssistantError as exc:
            self._jobs.pop(request_id, None)
            raise ApiError(500, str(exc), "server_error") from None

        kind = "chat.completion" if chat else "text_completion"
        created = int(time.time())
        ident = ("chatcmpl-" if chat else "cmpl-") + request_id

        if not stream:
            try:
                completion = await _unless_disconnected(request, job)
            except asyncio.CancelledError:
                job.stop.set()
                raise
            finally:
                self._jobs.pop(request_id, None)
            if completion.finish_reason == FinishReason.ERROR:
                raise ApiError(500, completion.error or "Generation failed.", "server_error")
            choice: dict[str, Any] = {"index": 0, "finish_reason": _finish(completion)}
            if chat:
                choice["message"] = {"role": "assistant", "content": completion.text}
                if tools is not None:
                    content, found = calls.parse_reply(completion.text, tools)
                    if found:
                        choice["message"]["content"] = content or None
                        choice["message"]["tool_calls"] = [c.to_json() for c in found]
                        choice["finish_reason"] = "tool_calls"
                if completion.reasoning:
                    choice["message"]["reasoning_content"] = completion.reasoning
            else:
                choice["text"] = completion.text
            return JSONResponse(
                {
                    "id": ident,
                    "object": kind,
                    "created": created,
                    "model": completion.model_file,
                    "choices": [choice],
                    "usage": _usage(completion),
                    "timings": _timings(completion),
                }
            )

        model_name = (model.name if model else None) or (
            self.runner.loaded.name if self.runner.loaded else ""
        )
        chunk_kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(delta: dict[str, Any] | str, finish: str | None) -> dict[str, Any]:
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
            if chat:
                choice["delta"] = delta
            else:
                choice["text"] = delta
            out = {
                "id": ident,
                "object": chunk_kind,
                "created": created,
                "model": model_name,
                "choices": [choice],
            }
            if include_usage:
                out["usage"] = None
            return out

        async def events() -> AsyncIterator[bytes]:
            finished = False
            try:
                if chat:
                    yield _sse(chunk({"role": "assistant", "content": ""}, None))
                while (item := await pieces.get()) is not None:
                    field, piece = item
                    yield _sse(chunk({field: piece} if chat else piece, None))
                try:
                    completion = job.future.result()
                except Exception as exc:  # noqa: BLE001 - the stream must end in an error event
                    log.error("Generation failed after it started", exc_info=exc)
                    completion = Completion.failed(f"Generation failed: {exc}")
                finished = True
                if completion.finish_reason == FinishReason.ERROR:
                    error = ApiError(500, completion.error or "Generation failed.", "server_error")
                    yield _sse({**error.body(), "assistant": completion.to_json()})
                else:
                    finish = _finish(completion)
                    if held is not None:
                        rest, found = held.finish(tools)  # type: ignore[arg-type]
                        if rest:
                            yield _sse(chunk({"content": rest}, None))
                        for i, call in enumerate(found):
                            yield _sse(chunk({"tool_calls": [call.to_json(i)]}, None))
                        finish = "tool_calls" if found else finish
                    last = chunk({} if chat else "", finish)
                    last["timings"] = _timings(completion)
                    # The text and the thinking came in the deltas already.
                    last["assistant"] = {**completion.to_json(), "text": None, "reasoning": ""}
                    yield _sse(last)
                    if include_usage:
                        yield _sse(
                            {
                                "id": ident,
                                "object": chunk_kind,
                                "created": created,
                                "model": model_name,
                                "choices": [],
                                "usage": _usage(completion),
                            }
                        )
                yield b"data: [DONE]\n\n"
            finally:
                if not finished:
                    job.stop.set()  # the client went away: stop at the next token
                self._jobs.pop(request_id, None)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Request-Id": request_id},
        )


async def _accepted_unless_disconnected(request: Request, job: GenerateJob) -> None:
    """Wait for the job to get a slot; a client that goes away meanwhile leaves the queue (the
    runner drops stopped jobs at its next step)."""
    accepted = asyncio.wrap_future(job.accepted)
    while True:
        done, _ = await asyncio.wait({accepted}, timeout=0.25)
        if done:
            accepted.result()
            return
        if await request.is_disconnected():
            job.stop.set()
            await accepted
            return


async def _unless_disconnected(request: Request, job: GenerateJob) -> Completion:
    """The job's result; if the client goes away first, stop the job (it frees the inference
    thread at the next token) and wait for it to end."""
    future = asyncio.wrap_future(job.future)
    while True:
        done, _ = await asyncio.wait({future}, timeout=0.25)
        if done:
            return future.result()
        if await request.is_disconnected():
            job.stop.set()
            return await future


def _is_owner(request: Request) -> bool:
    """Whether the request came with the owner's key (the app, the CLI), as the Gate found."""
    return bool(request.scope.get("state", {}).get("owner"))


def _client_label(request: Request) -> str:
    """Who sent a request, as the Monitor shows it: this app, or an address and its client."""
    if _is_owner(request):
        return "this app"
    peer = request.client
    where = f"{peer.host}:{peer.port}" if peer else "?"
    agent = request.headers.get("user-agent", "").split(" ")[0][:40]
    return f"{where} {agent}".strip()


def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
    log.error("Unexpected error serving a request", exc_info=exc)
    return ApiError(500, f"The engine failed: {type(exc).__name__}.", "server_error").response()


def _installed_files() -> list[Path]:
    return library.model_entry_files()


def _finish(completion: Completion) -> str:
    return (
        FinishReason.LENGTH
        if completion.finish_reason == FinishReason.LENGTH
        else FinishReason.STOP
    )


def _usage(c: Completion) -> dict[str, Any]:
    return {
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "total_tokens": c.prompt_tokens + c.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": c.cached_tokens},
    }


def _timings(c: Completion) -> dict[str, Any]:
    """llama-server's field, so clients written for it read ours too."""
    gen_s = c.completion_tokens / c.tokens_per_s if c.tokens_per_s else 0.0
    prompt_n = c.prompt_tokens - c.cached_tokens
    return {
        "cache_n": c.cached_tokens,
        "prompt_n": prompt_n,
        "prompt_ms": round(c.ttft_s * 1000, 3),
        "prompt_per_token_ms": round(c.ttft_s * 1000 / prompt_n, 3) if prompt_n else 0.0,
        "prompt_per_second": round(prompt_n / c.ttft_s, 3) if c.ttft_s else 0.0,
        "predicted_n": c.completion_tokens,
        "predicted_ms": round(gen_s * 1000, 3),
        "predicted_per_token_ms": round(1000 / c.tokens_per_s, 3) if c.tokens_per_s else 0.0,
        "predicted_per_second": round(c.tokens_per_s, 3),
    }


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n\n"
