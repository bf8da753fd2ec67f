"""The client of an engine over the OpenAI-compatible protocol (httpx), for the GUI and the CLI.

Blocking calls, made from a worker thread (the GUI's engine thread) or the CLI's main thread.
Stop is a ``threading.Event``: set, the stream is closed at the next piece and the engine is
told to cancel at once, which also stops it while it is still reading the prompt.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx

from assistant.engine.records import Completion, GenerationParams, LoadedModel
from assistant.errors import (
    AssistantError,
    EngineUnavailable,
    GenerationError,
    InvalidModelFile,
    ModelError,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0


class EngineClient:
    """One engine at ``base_url`` (``http://127.0.0.1:PORT``), with its key."""

    def __init__(self, base_url: str, api_key: str):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        # trust_env=False: a proxy from the environment must never see loopback traffic.
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT_S),
            trust_env=False,
        )

    def close(self) -> None:
        self._http.close()

    # -- simple calls ------------------------------------------------------------------------

    def health(self, timeout: float = 2.0) -> dict[str, Any]:
        try:
            r = self._http.get("/health", timeout=timeout)
        except httpx.HTTPError as exc:
            raise EngineUnavailable(f"The engine at {self.base_url} is not answering.") from exc
        return dict(r.json()) | {"http_status": r.status_code}

    def status(self, timeout: float = 30.0) -> dict[str, Any]:
        return dict(self._get("/v1/assistant/status", timeout))

    def metrics_text(self, timeout: float = 5.0) -> str:
        """The engine's ``/metrics`` (Prometheus text format)."""
        try:
            r = self._http.get("/metrics", timeout=timeout)
        except httpx.HTTPError as exc:
            raise EngineUnavailable(f"The engine stopped answering ({exc}).") from exc
        _raise_for_error(r.status_code, _json_or_none(r.content))
        return r.text

    def models(self) -> list[str]:
        return [m["id"] for m in self._get("/v1/models")["data"]]

    def unload(self) -> None:
        self._post("/v1/assistant/unload", {})

    def cancel(self, request_id: str) -> None:
        try:
            self._http.post("/v1/assistant/cancel", json={"id": request_id}, timeout=2.0)
        except httpx.HTTPError:
            pass  # the stream's own close stops it too

    def _get(self, path: str, timeout: float = 30.0) -> Any:
        try:
            r = self._http.get(path, timeout=timeout)
        except httpx.HTTPError as exc:
            raise EngineUnavailable(f"The engine stopped answering ({exc}).") from exc
        _raise_for_error(r.status_code, _json_or_none(r.content))
        return r.json()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            r = self._http.post(path, json=body, timeout=60)
        except httpx.HTTPError as exc:
            raise EngineUnavailable(f"The engine stopped answering ({exc}).") from exc
        _raise_for_error(r.status_code, _json_or_none(r.content))
        return r.json()

    # -- load ---------------------------------------------------------------------------------

    def load(
        self,
        model: str | Path,
        *,
        n_ctx: int,
        n_gpu_layers: int,
        progress: Callable[[float], None] | None = None,
    ) -> LoadedModel:
        body = {"model": str(model), "n_ctx": n_ctx, "n_gpu_layers": n_gpu_layers}
        for event in self._events("/v1/assistant/load", body, "while loading the model"):
            if "progress" in event:
                if progress is not None:
                    progress(float(event["progress"]))
            elif "loaded" in event:
                return LoadedModel.from_json(event["loaded"])
            elif "error" in event:
                raise ModelError(str(event["error"].get("message", "The model did not load.")))
        raise EngineUnavailable("The engine stopped while loading the model.")

    # -- chat ---------------------------------------------------------------------------------

    def chat(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        *,
        model: str | None = None,
        on_text: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
        kv_state: str | None = None,
        save_state: bool = False,
    ) -> Completion:
        """Stream a reply; returns the Completion (cancelled when ``stop`` was set).

        Raises EngineUnavailable (with the text so far) when the engine goes away mid-reply.
        """
        body: dict[str, Any] = {
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k,
            "min_p": params.min_p,
            "repeat_penalty": params.repeat_penalty,
            # Our own extension: the GUI and CLI want long chats trimmed, not refused.
            "assistant": {"truncate": True},
        }
        if model:
            body["model"] = model
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if params.ignore_eos:
            body["ignore_eos"] = True
        if kv_state:
            body["assistant"] |= {"kv_state": kv_state, "save_state": save_state}
        stop = stop if stop is not None else threading.Event()
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        parts: list[str] = []
        first_at: float | None = None
        done = threading.Event()
        watcher = threading.Thread(
            target=self._cancel_on_stop, args=(stop, done, request_id), daemon=True
        )
        watcher.start()
        try:
            for event in self._events(
                "/v1/chat/completions",
                body,
                "while writing the reply",
                {"X-Request-Id": request_id},
                stop,
            ):
                if "error" in event:
                    message = str(event["error"].get("message", "Generation failed."))
                    info = event.get("assistant") or {}
                    completion = Completion.failed(
                        message, "".join(parts), info.get("model_file", "")
                    )
                    return completion
                choices = event.get("choices") or []
                if choices:
                    piece = (choices[0].get("delta") or {}).get("content")
                    if piece:
                        if first_at is None:
                            first_at = time.perf_counter()
                        parts.append(piece)
                        if on_text is not None:
                            on_text(piece)
                    if choices[0].get("finish_reason") and "assistant" in event:
                        info = dict(event["assistant"])
                        info["text"] = "".join(parts)
                        return Completion.from_json(info)
            # The stream ended without a finish: stopped by us, or the engine went away.
            if stop.is_set():
                now = time.perf_counter()
                return Completion(
                    text="".join(parts),
                    finish_reason="cancelled",
                    prompt_tokens=0,
                    completion_tokens=len(parts),
                    cached_tokens=0,
                    ttft_s=(first_at or now) - started,
                    duration_s=now - started,
                    tokens_per_s=0.0,
                    context_tokens=0,
                    trimmed_messages=0,
                    model_file=model or "",
                )
            raise EngineUnavailable(
                "The engine stopped in the middle of the reply.", "".join(parts)
            )
        except EngineUnavailable as exc:
            if not exc.partial_text and parts:
                exc.partial_text = "".join(parts)
            raise
        finally:
            done.set()

    def _cancel_on_stop(
        self, stop: threading.Event, done: threading.Event, request_id: str
    ) -> None:
        while not done.is_set():
            if stop.wait(0.02):
                if not done.is_set():
                    self.cancel(request_id)
                return

    def _events(
        self,
        path: str,
        body: dict[str, Any],
        what: str,
        headers: dict[str, str] | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[dict[str, Any]]:
        """POST and yield each server-sent event's JSON until ``[DONE]``."""
        try:
            with self._http.stream("POST", path, json=body, headers=headers) as r:
                if r.status_code != 200:
                    _raise_for_error(r.status_code, _json_or_none(r.read()))
                for line in r.iter_lines():
                    if stop is not None and stop.is_set():
                        return
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        yield json.loads(data)
                    except ValueError:
                        log.warning("Ignoring a malformed event from the engine")
        except httpx.HTTPError as exc:
            if stop is not None and stop.is_set():
                return
            raise EngineUnavailable(f"The engine stopped answering {what} ({exc}).") from exc


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _raise_for_error(status: int, body: Any) -> None:
    if status < 400:
        return
    error = body.get("error") if isinstance(body, dict) else None
    message = (error or {}).get("message") if isinstance(error, dict) else None
    message = message or f"The engine answered HTTP {status}."
    code = (error or {}).get("code") if isinstance(error, dict) else None
    if status == 404 and code == "model_not_found":
        raise InvalidModelFile(message)
    if status in (400, 404):
        raise GenerationError(message)
    if status in (401, 403):
        raise AssistantError(f"The engine refused the request: {message}")
    raise GenerationError(message)
