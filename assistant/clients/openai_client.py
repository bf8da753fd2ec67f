"""A client of any OpenAI-compatible server: list its models, stream a chat reply.

The one protocol the app speaks, to its own engine process (``engine_client.EngineClient`` adds
that engine's extensions) and to remote engines (llama-server, vLLM, Ollama, LM Studio,
llama-cpp-python's server, another Assistant). Blocking calls, made from a worker thread or the
CLI's main thread.

What differs between servers is handled here: no key; no ``include_usage`` (the chunks are
counted then); an error sent mid-stream as a ``data: {"error": ...}`` chunk; reasoning in a
``reasoning_content`` field, kept apart from the answer. 429 and 5xx are retried with backoff,
honouring ``Retry-After`` as the openai client does. Every failure is an ``AssistantError`` with
one sentence fit to show; a reply cut midway raises ``EngineUnavailable`` with the text so far.

Stop is a ``threading.Event``: once set, the socket is shut down at once (a blocked read returns
even while the server is still reading the prompt) and the reply ends as cancelled.

Over 400 lines because streaming, retries, the error sentences and Stop all act on one request
and its socket: split apart, each piece would reach into the others.
"""

from __future__ import annotations

import dataclasses
import email.utils
import functools
import json
import logging
import random
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx

from assistant.clients.remote import EngineStatus, detect_kind, sampling_fields
from assistant.endpoints import RemoteEngine, ServerKind
from assistant.errors import (
    AssistantError,
    EngineBusy,
    EngineUnavailable,
    GenerationError,
)
from assistant.reasoning import ThinkSplitter
from assistant.records import Completion, FinishReason, GenerationParams

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
# A server that sends nothing for this long mid-reply is taken for gone. Generous: Ollama serves
# one request at a time by default, so a reply may wait its turn (Stop works meanwhile).
READ_TIMEOUT_S = 600.0
# As the openai client: two retries of 429 and 5xx, 0.5 s doubling up to 8 s, a Retry-After of
# up to 60 s honoured.
MAX_RETRIES = 2
INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
MAX_RETRY_AFTER_S = 60.0
RETRIED_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


OnText = Callable[[str], None]


@dataclass
class _Reply:
    """What a stream has brought so far."""

    parts: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    chunks: int = 0
    usage: dict[str, Any] | None = None
    finish_reason: FinishReason | None = None
    first_at: float | None = None
    thought_at: float | None = None  # the first piece of reasoning
    answer_at: float | None = None  # the first piece of the answer
    # A server that leaves <think>...</think> in the content (no reasoning parser): told apart here.
    splitter: ThinkSplitter | None = None
    info: dict[str, Any] | None = None  # Assistant's own figures (its "assistant" field)
    # Tool calls as their deltas arrive, by index (OpenAI's "tool_calls" in the delta).
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)  # this attempt's request

    @property
    def text(self) -> str:
        return "".join(self.parts)


@functools.cache
def _default_tls(trust_env: bool) -> ssl.SSLContext:
    """httpx's own default TLS context (the system's trust store), made once: making it loads
    every CA certificate, about 50 ms, and the app makes clients often (each engine start, each
    probe), each with two connection pools."""
    return httpx.create_ssl_context(trust_env=trust_env)


class OpenAIClient:
    """One server's API at ``base_url`` (``http://host:port/v1``).

    ``name`` is how sentences call it ("gpu-box"); ``kind`` decides which extension fields a
    request carries (the standard ones only, when unknown).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        name: str,
        kind: ServerKind | None = None,
        verify: ssl.SSLContext | bool = True,
        trust_env: bool = False,
        max_retries: int = MAX_RETRIES,
        read_timeout: float | None = READ_TIMEOUT_S,
    ):
        parts = urlsplit(base_url.rstrip("/"))
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.kind = kind
        self.max_retries = max_retries
        self._prefix = parts.path  # "/v1"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        options: dict[str, Any] = {
            "base_url": f"{parts.scheme}://{parts.netloc}",
            "headers": headers,
            "timeout": httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT_S),
            "verify": _default_tls(trust_env) if verify is True else verify,
            "trust_env": trust_env,
        }
        self._http = httpx.Client(**options)
        # Streams get a connection of their own (none is kept idle), so that Stop can shut
        # down exactly that socket, even before the server has answered.
        self._streams = httpx.Client(**options, limits=httpx.Limits(max_keepalive_connections=0))

    @classmethod
    def for_engine(cls, engine: RemoteEngine) -> OpenAIClient:
        """A client of a remote engine: TLS verified (with its own CA bundle, when it names
        one); the environment's proxy settings honoured unless it is on this machine."""
        verify: ssl.SSLContext | bool = True
        if engine.ca_bundle:
            try:
                verify = ssl.create_default_context(cafile=engine.ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise AssistantError(
                    f"The CA bundle {engine.ca_bundle} of {engine.name} cannot be read ({exc})."
                ) from None
        return cls(
            engine.url,
            engine.api_key,
            name=engine.name,
            kind=engine.kind,
            verify=verify,
            trust_env=not engine.is_loopback,
        )

    def close(self) -> None:
        self._http.close()
        self._streams.close()

    def __enter__(self) -> OpenAIClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- models ---------------------------------------------------------------------------------

    def model_entries(self, timeout: float = CONNECT_TIMEOUT_S) -> list[dict[str, Any]]:
        """The server's GET /v1/models entries (each has at least an "id")."""
        try:
            r = self._http.get(f"{self._prefix}/models", timeout=timeout)
        except httpx.HTTPError as exc:
            raise self._connection_error(exc, "listing its models") from None
        except _BAD_ADDRESS as exc:
            raise _bad_address(self.name, exc) from None
        self._raise_for_status(r.status_code, _json_or_none(r.content), r.headers)
        body = _json_or_none(r.content)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise GenerationError(
                f"{self.name} answered GET {self.base_url}/models with something other than a "
                "model list; is this the address of its OpenAI-compatible API?"
            )
        return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]

    def models(self) -> list[str]:
        return [m["id"] for m in self.model_entries()]

    # -- chat -----------------------------------------------------------------------------------

    def chat(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        *,
        model: str | None = None,
        on_text: OnText | None = None,
        on_reasoning: OnText | None = None,
        on_retry: OnText | None = None,
        stop: threading.Event | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        on_tool_calls: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> Completion:
        """Stream a reply. Returns the Completion (finish reason "cancelled" once ``stop`` is
        set, "error" with the sentence when the server sent an error mid-stream); the tool
        calls the reply made, if any, go to ``on_tool_calls`` at its end.

        Raises AssistantError when nothing could be had; EngineUnavailable, with the text so
        far, when the connection went away midway.
        """
        body: dict[str, Any] = {
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if model:
            body["model"] = model
        body |= self._sampling(params)
        body |= extra or {}
        stop = stop if stop is not None else threading.Event()
        reply = _Reply()
        try:
            for event in self._stream_with_retries(body, headers or {}, stop, on_retry, reply):
                if "error" in event:
                    _flush(reply)
                    found = event.get("assistant")
                    info: dict[str, Any] = found if isinstance(found, dict) else {}
                    failed = Completion.failed(
                        self._error_sentence(event["error"]),
                        reply.text,
                        str(info.get("model_file") or model or ""),
                    )
                    return _with_reasoning(failed, reply)
                self._take(event, reply, on_text, on_reasoning)
        except EngineUnavailable as exc:
            if stop.is_set():
                pass  # the socket was shut down by Stop
            else:
                _flush(reply)
                exc.partial_text = exc.partial_text or reply.text
                exc.partial_reasoning = "".join(reply.reasoning)
                raise
        if reply.tool_calls and on_tool_calls is not None:
            on_tool_calls([reply.tool_calls[i] for i in sorted(reply.tool_calls)])
        if stop.is_set() and reply.finish_reason is None:
            return self._completion(reply, FinishReason.CANCELLED, model)
        if reply.finish_reason is None and not reply.parts and not reply.chunks:
            raise EngineUnavailable(f"{self.name} closed the connection without a reply.")
        return self._completion(reply, reply.finish_reason or FinishReason.STOP, model)

    def chat_tools(
        self,
        messages: list[dict[str, Any]],
        params: GenerationParams,
        tools: list[dict[str, Any]],
        *,
        model: str | None = None,
        tool_choice: str | dict[str, Any] = "auto",
        on_text: OnText | None = None,
        on_reasoning: OnText | None = None,
        stop: threading.Event | None = None,
    ) -> tuple[Completion, list[dict[str, Any]]]:
        """A streamed reply that may call ``tools``: (its Completion, its calls in OpenAI's
        form: id, type, function name and arguments)."""
        found: list[dict[str, Any]] = []
        completion = OpenAIClient.chat(
            self, messages, params, model=model, on_text=on_text, on_reasoning=on_reasoning,
            stop=stop, extra={"tools": tools, "tool_choice": tool_choice, **self._own_fields()},
            headers=self._request_headers(), on_tool_calls=found.extend,
        )  # fmt: skip
        return completion, found

    def _own_fields(self) -> dict[str, Any]:
        """Fields of the request body beyond OpenAI's (none: this is any server)."""
        return {}

    def _request_headers(self) -> dict[str, str]:
        return {}

    def _sampling(self, params: GenerationParams) -> dict[str, Any]:
        return sampling_fields(self.kind, params)

    def _take(
        self,
        event: dict[str, Any],
        reply: _Reply,
        on_text: OnText | None,
        on_reasoning: OnText | None,
    ) -> None:
        if isinstance(event.get("usage"), dict):
            reply.usage = event["usage"]
        if isinstance(event.get("assistant"), dict):
            reply.info = event["assistant"]
        choices = event.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return
        choice = choices[0]
        delta = choice.get("delta") or {}
        thought = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(thought, str) and thought:
            _thought(reply, thought, on_reasoning)
        for i, part in enumerate(delta.get("tool_calls") or []):
            if isinstance(part, dict):
                _add_call_delta(reply, part, i)
        piece = delta.get("content")
        if isinstance(piece, str) and piece:
            reply.chunks += 1
            if reply.first_at is None:
                reply.first_at = time.perf_counter()
            if reply.splitter is None:
                reply.splitter = ThinkSplitter(
                    lambda text: _answer(reply, text, on_text),
                    lambda text: _thought(reply, text, on_reasoning),
                )
            reply.splitter.feed(piece)
        reason = choice.get("finish_reason")
        if reason:
            reply.finish_reason = (
                FinishReason.LENGTH if reason == FinishReason.LENGTH else FinishReason.STOP
            )

    def _completion(
        self, reply: _Reply, finish_reason: FinishReason, model: str | None
    ) -> Completion:
        _flush(reply)
        now = time.perf_counter()
        if reply.info is not None and finish_reason != FinishReason.CANCELLED:
            # Another Assistant (or our own engine) says exactly what it did.
            completion = Completion.from_json(reply.info | {"text": reply.text})
            return _with_reasoning(completion, reply)
        usage = reply.usage or {}
        completion_tokens = int(usage.get("completion_tokens") or reply.chunks)
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        details = usage.get("prompt_tokens_details")
        cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
        started = reply.started
        ttft = (reply.first_at or now) - started
        generating = now - (reply.first_at or now)
        completion = Completion(
            text=reply.text,
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=cached,
            ttft_s=ttft,
            duration_s=now - started,
            tokens_per_s=max(completion_tokens - 1, 0) / generating if generating > 0 else 0.0,
            context_tokens=prompt_tokens + completion_tokens,
            trimmed_messages=0,
            model_file=model or "",
        )
        return _with_reasoning(completion, reply)

    # -- the stream -----------------------------------------------------------------------------

    def _stream_with_retries(
        self,
        body: dict[str, Any],
        headers: dict[str, str],
        stop: threading.Event,
        on_retry: OnText | None,
        reply: _Reply,
    ) -> Iterator[dict[str, Any]]:
        for attempt in range(self.max_retries + 1):
            reply.started = time.perf_counter()  # the waits before a retry are not its time
            try:
                yield from self._events(f"{self._prefix}/chat/completions", body, headers, stop)
                return
            except _Retryable as busy:
                if attempt == self.max_retries:
                    raise busy.error from None
                delay = busy.retry_after or _backoff(attempt)
                log.info("%s answered HTTP %d; retrying in %.1f s", self.name, busy.status, delay)
                if on_retry is not None:
                    wait = f"{delay:.1f}" if delay < 10 else f"{delay:.0f}"
                    on_retry(f"{busy.error} Trying again in {wait} s...")
                if stop.wait(delay):
                    return

    def _events(
        self,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
        stop: threading.Event | None,
        *,
        chat: bool = True,
        doing: str = "in the middle of the reply",
    ) -> Iterator[dict[str, Any]]:
        """POST and yield each server-sent event's JSON until ``[DONE]``.

        For a chat reply (``chat``), a stream that ends without ``[DONE]`` after its finish
        chunk is complete (some servers just close); one that ends before it raises
        EngineUnavailable, unless stopped; 429 and 5xx raise _Retryable.
        """
        watcher_done = threading.Event()
        finished = not chat
        answered = False
        connection = _Connection()
        if stop is not None:
            threading.Thread(
                target=self._close_on_stop,
                args=(connection, stop, watcher_done, headers.get("X-Request-Id")),
                name="stream-stop",
                daemon=True,
            ).start()
        try:
            with self._streams.stream(
                "POST", path, json=body, headers=headers, extensions={"trace": connection.trace}
            ) as r:
                answered = True
                if r.status_code != 200:
                    raw = r.read()
                    self._raise_for_status(
                        r.status_code, _json_or_none(raw), r.headers, retryable=chat
                    )
                for line in r.iter_lines():
                    if stop is not None and stop.is_set():
                        return
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        event = json.loads(data)
                    except ValueError:
                        log.warning("Ignoring a malformed event from %s", self.name)
                        continue
                    if isinstance(event, dict):
                        finished = finished or _has_finish(event)
                        yield event
        except httpx.HTTPError as exc:
            if stop is not None and stop.is_set():
                return
            if finished:
                return  # closed after its last chunk, without [DONE]
            raise self._connection_error(exc, doing if answered else "before answering") from None
        except _BAD_ADDRESS as exc:
            raise _bad_address(self.name, exc) from None
        finally:
            watcher_done.set()
        if not finished and not (stop is not None and stop.is_set()):
            raise self._cut_midway()

    def _close_on_stop(
        self,
        connection: _Connection,
        stop: threading.Event,
        done: threading.Event,
        request_id: str | None,
    ) -> None:
        """Once Stop is pressed: shut the stream's socket down, so that a read blocked waiting
        for the next token (or for the server's first answer) returns now, and the server sees
        the client go (servers stop on that)."""
        if not _wait_either(stop, done):
            return
        self._on_stop(request_id)
        while not done.is_set():  # the socket may not even be connected yet
            connection.shut_down()
            done.wait(0.02)

    def _cut_midway(self) -> EngineUnavailable:
        """A stream that ended, cleanly, before its reply had finished."""
        return EngineUnavailable(
            f"The connection to {self.name} was cut in the middle of the reply."
        )

    def _on_stop(self, request_id: str | None) -> None:
        """Called once when Stop is pressed mid-stream (the engine's client cancels there)."""

    # -- errors ---------------------------------------------------------------------------------

    def _connection_error(self, exc: httpx.HTTPError, doing: str) -> AssistantError:
        if _is_tls_failure(exc):
            return EngineUnavailable(
                f"The secure (TLS) connection to {self.name} at {self.base_url} failed: "
                f"{_tls_reason(exc)}. If it uses a certificate of its own, name its CA bundle "
                "in the engine's settings."
            )
        if isinstance(exc, httpx.ConnectTimeout):
            return EngineUnavailable(
                f"{self.name} at {self.base_url} did not answer within {CONNECT_TIMEOUT_S:.0f} s."
            )
        if isinstance(exc, httpx.ConnectError):
            return EngineUnavailable(f"Can't reach {self.name} at {self.base_url}: {_reason(exc)}.")
        if isinstance(exc, httpx.RemoteProtocolError) and "without sending" in str(exc):
            return EngineUnavailable(
                f"{self.name} at {self.base_url} closed the connection without answering."
            )
        if isinstance(exc, httpx.ReadTimeout):
            return EngineUnavailable(
                f"{self.name} sent nothing for {READ_TIMEOUT_S:.0f} s {doing}; "
                "the connection was closed."
            )
        return EngineUnavailable(f"The connection to {self.name} was cut {doing} ({_reason(exc)}).")

    def _raise_for_status(
        self, status: int, body: Any, headers: httpx.Headers, *, retryable: bool = False
    ) -> None:
        """The error for an HTTP status, as a sentence; 429 and 5xx as _Retryable when the
        request may be sent again (``retryable``)."""
        if 300 <= status < 400:
            where = headers.get("location", "another address")
            raise GenerationError(
                f"{self.name} redirects its API to {where}: give that as the engine's URL."
            )
        if status < 400:
            return
        message = _error_message(body) or f"HTTP {status}"
        if status in RETRIED_STATUSES:
            if status == 429:
                error: AssistantError = EngineBusy(
                    f"{self.name} is busy (HTTP 429: {message}).",
                    round(_retry_after(headers) or 1),
                )
            else:
                error = GenerationError(f"{self.name} failed (HTTP {status}: {message}).")
            if not retryable:
                raise error
            raise _Retryable(status, error, _retry_after(headers))
        if status in (401, 403):
            raise AssistantError(
                f"{self.name} refused the API key (HTTP {status}: {message}). "
                "Check the engine's key in Settings."
            )
        if status == 404:
            raise GenerationError(
                f"{self.name} answered 404 Not Found ({message}): the model is not one it "
                f"serves, or {self.base_url} is not its API address."
            )
        raise GenerationError(f"{self.name} refused the request (HTTP {status}: {message}).")

    def _error_sentence(self, error: Any) -> str:
        """A ``data: {"error": ...}`` chunk mid-stream, as one sentence."""
        message = _error_message({"error": error}) or "no details"
        return f"{self.name} stopped the reply with an error: {message}"


# What httpx raises, besides its HTTPError, for an address it cannot use (an empty or too long
# host label, a character no URL may hold) or a proxy it cannot speak (SOCKS without socksio).
_BAD_ADDRESS = (httpx.InvalidURL, UnicodeError, ValueError, ImportError)


def _bad_address(name: str, exc: BaseException) -> AssistantError:
    return AssistantError(f"{name}'s address cannot be used: {exc}.")


class _Connection:
    """The socket of one stream, learnt from httpcore's documented "trace" extension."""

    def __init__(self) -> None:
        self._socket: socket.socket | None = None

    def trace(self, event: str, info: dict[str, Any]) -> None:
        # connection.* directly, proxy.start_tls.* through an HTTPS proxy's tunnel.
        if event.endswith(("connect_tcp.complete", "start_tls.complete")):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                self._socket = sock

    def shut_down(self) -> None:
        if self._socket is not None:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected any more


def _wait_either(stop: threading.Event, done: threading.Event) -> bool:
    """Wait until ``stop`` or ``done`` is set; True when stopped before done."""
    while not done.is_set():
        if stop.wait(0.02):
            return not done.is_set()
    return False


class _Retryable(Exception):
    def __init__(self, status: int, error: AssistantError, retry_after: float | None):
        super().__init__(str(error))
        self.status = status
        self.error = error
        self.retry_after = retry_after


def _add_call_delta(reply: _Reply, part: dict[str, Any], position: int) -> None:
    """One tool call's delta: its id and name come once, its arguments in pieces. A server
    that sends no index gives each call an id of its own; a call without an id gets one."""
    index = part.get("index")
    new_id = part.get("id") if isinstance(part.get("id"), str) else ""
    if not isinstance(index, int):
        # A known id continues its call; a new id, or a second call in one delta, starts one;
        # a delta with neither continues the latest.
        same = [i for i, c in reply.tool_calls.items() if new_id and c["id"] == new_id]
        latest = max(reply.tool_calls, default=-1)
        starts = bool(new_id) or latest < 0 or position > 0
        index = same[0] if same else latest + 1 if starts else latest
    call = reply.tool_calls.setdefault(
        index, {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                "function": {"name": "", "arguments": ""}},
    )  # fmt: skip
    if new_id:
        call["id"] = new_id
    function = part.get("function") or {}
    if isinstance(function.get("name"), str) and function["name"]:
        call["function"]["name"] = function["name"]
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        call["function"]["arguments"] += arguments
    elif isinstance(arguments, dict):  # some servers send the object (Ollama)
        call["function"]["arguments"] += json.dumps(arguments)


def _flush(reply: _Reply) -> None:
    """The stream ended (or broke): text held back in case it began a <think> is text."""
    if reply.splitter is not None:
        reply.splitter.finish()


def _thought(reply: _Reply, text: str, on_reasoning: OnText | None) -> None:
    now = time.perf_counter()
    reply.first_at = reply.first_at or now
    reply.thought_at = reply.thought_at or now
    reply.reasoning.append(text)
    if on_reasoning is not None:
        on_reasoning(text)


def _answer(reply: _Reply, text: str, on_text: OnText | None) -> None:
    reply.answer_at = reply.answer_at or time.perf_counter()
    reply.parts.append(text)
    if on_text is not None:
        on_text(text)


def _with_reasoning(completion: Completion, reply: _Reply) -> Completion:
    """The completion, with the reasoning the stream brought (if it has none of its own) and
    how long the model thought: from its first thought to its answer (or its end)."""
    if reply.reasoning and not completion.reasoning:
        completion.reasoning = "".join(reply.reasoning).strip()
    if reply.thought_at is not None:
        completion.reasoning_s = (reply.answer_at or time.perf_counter()) - reply.thought_at
    return completion


def _has_finish(event: dict[str, Any]) -> bool:
    choices = event.get("choices") or []
    return bool(choices) and isinstance(choices[0], dict) and bool(choices[0].get("finish_reason"))


def _backoff(attempt: int) -> float:
    delay = min(INITIAL_RETRY_DELAY_S * 2**attempt, MAX_RETRY_DELAY_S)
    return delay * (1 - 0.25 * random.random())


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the server asks us to wait (retry-after-ms, or Retry-After in seconds or as a
    date), when between 0 and 60 s as the openai client honours it; else None."""
    seconds: float | None = None
    try:
        if "retry-after-ms" in headers:
            seconds = float(headers["retry-after-ms"]) / 1000
        elif "retry-after" in headers:
            value = headers["retry-after"]
            try:
                seconds = float(value)
            except ValueError:
                when = email.utils.parsedate_to_datetime(value)
                seconds = when.timestamp() - time.time()
    except (TypeError, ValueError, IndexError):
        return None
    if seconds is None or not 0 < seconds <= MAX_RETRY_AFTER_S:
        return None
    return seconds


def _error_message(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    error = body.get("error", body.get("detail"))
    if isinstance(error, dict):
        error = error.get("message")
    if isinstance(error, str) and error.strip():
        return " ".join(error.split())[:300]
    return None


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_tls_failure(exc: BaseException) -> bool:
    return any(isinstance(e, ssl.SSLError) for e in _causes(exc)) or "SSL" in str(exc)


def _tls_reason(exc: BaseException) -> str:
    for e in _causes(exc):
        if isinstance(e, ssl.SSLCertVerificationError) and e.verify_message:
            return f"its certificate could not be verified ({e.verify_message})"
        if isinstance(e, ssl.SSLError):
            return str(e.reason or e).lower().replace("_", " ")
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        detail = text.split("certificate verify failed:")[-1].split("(")[0].strip()
        return f"its certificate could not be verified ({detail or 'unknown authority'})"
    return text


def _reason(exc: BaseException) -> str:
    for e in _causes(exc):
        if isinstance(e, ConnectionRefusedError) or "Connection refused" in str(e):
            return "the connection was refused (is the server running, on that port?)"
        if isinstance(e, socket.gaierror) or "Name or service not known" in str(e):
            return "the host name is not known"
    text = str(exc)
    return text or type(exc).__name__


# One request at a time from this process to each remote engine. llama-cpp-python's server
# interrupts a streaming reply when any other request arrives (even GET /v1/models), and Ollama
# serves one at a time by default: so a probe skips an engine that is writing a reply for us,
# and a reply waits for a probe in flight (seconds at most) before it starts.
_locks_lock = threading.Lock()
_engine_locks: dict[str, threading.Lock] = {}


def in_use(engine: RemoteEngine) -> threading.Lock:
    """The lock held while this app talks to ``engine`` (by its URL)."""
    with _locks_lock:
        return _engine_locks.setdefault(engine.url, threading.Lock())


def probe(engine: RemoteEngine, timeout: float = CONNECT_TIMEOUT_S) -> EngineStatus | None:
    """Whether a remote engine answers, with its models and the kind of server it is; None
    when it is writing a reply for us right now (it is not asked then)."""
    lock = in_use(engine)
    if not lock.acquire(blocking=False):
        return None
    try:
        with OpenAIClient.for_engine(engine) as client:
            entries = client.model_entries(timeout)
    except AssistantError as exc:
        return EngineStatus(engine, problem=str(exc))
    except Exception as exc:  # a bug, but one engine's, not the whole list's
        log.exception("Probing %s failed", engine.name)
        return EngineStatus(engine, problem=f"{engine.name} could not be asked: {exc}")
    finally:
        lock.release()
    kind = engine.kind or detect_kind(entries)
    return EngineStatus(
        dataclasses.replace(engine, kind=kind), tuple(m["id"] for m in entries), None
    )


def probe_all(engines: list[RemoteEngine]) -> list[EngineStatus | None]:
    """``probe`` each engine, all at once (one that does not answer holds up no other)."""
    if not engines:
        return []
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, len(engines))) as pool:
        return list(pool.map(probe, engines))
