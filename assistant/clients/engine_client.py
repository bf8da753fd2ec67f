"""The client of our own engine process: the OpenAI-compatible protocol of every engine
(``assistant.clients.openai_client``) plus this engine's extensions: health and status, load with
progress, unload, cancel, the saved KV cache of a conversation, and exact figures per reply.

Stop also tells the engine to cancel by the request's id, which stops it at once even while it
is still reading the prompt.
"""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np

from assistant.clients.openai_client import OnText, OpenAIClient, _error_message, _json_or_none
from assistant.clients.remote import sampling_fields
from assistant.endpoints import ServerKind
from assistant.errors import (
    AssistantError,
    EngineBusy,
    EngineUnavailable,
    GenerationError,
    InvalidModelFile,
    ModelError,
)
from assistant.records import Completion, GenerationParams, LoadedModel

log = logging.getLogger(__name__)


class EngineClient(OpenAIClient):
    """One engine at ``base_url`` (``http://127.0.0.1:PORT``), with its key."""

    def __init__(self, base_url: str, api_key: str):
        # trust_env=False: a proxy from the environment must never see loopback traffic.
        # No read timeout: a request may wait its turn for a slot, or read a long prompt on a
        # CPU, in silence. No retries: our engine's 500 is a sentence meant for the user, and
        # the app's own requests are never queued out with 429.
        super().__init__(
            base_url.rstrip("/") + "/v1",
            api_key,
            name="The engine",
            kind=ServerKind.ASSISTANT,
            max_retries=0,
            read_timeout=None,
        )
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

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
        self._raise_for_status(r.status_code, _json_or_none(r.content), r.headers)
        return r.text

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
        self._raise_for_status(r.status_code, _json_or_none(r.content), r.headers)
        return r.json()

    def _post(self, path: str, body: dict[str, Any], timeout: float | None = 60) -> Any:
        try:
            r = self._http.post(path, json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise EngineUnavailable(f"The engine stopped answering ({exc}).") from exc
        self._raise_for_status(r.status_code, _json_or_none(r.content), r.headers)
        return r.json()

    # -- embeddings ---------------------------------------------------------------------------

    def embed(
        self, texts: list[str], model: str | None = None, *, interactive: bool = False
    ) -> np.ndarray:
        """Unit vectors of ``texts`` (rows), from an embedding model beside the chat model;
        texts longer than the model takes are cut (documents' passages, a long question).
        ``interactive`` is a question being asked: it goes before indexing."""
        body: dict[str, Any] = {"input": texts, "encoding_format": "base64", "truncate": True}
        if model:
            body["model"] = model
        if not interactive:
            body["priority"] = "background"
        # No timeout: indexing waits while the person's reply is written, however long.
        data = self._post("/v1/embeddings", body, timeout=None)["data"]
        rows = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in data]
        return np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

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
        for event in self._events_of("/v1/assistant/load", body, "while loading the model"):
            if "progress" in event:
                if progress is not None:
                    progress(float(event["progress"]))
            elif "loaded" in event:
                return LoadedModel.from_json(event["loaded"])
            elif "error" in event:
                raise ModelError(str(event["error"].get("message", "The model did not load.")))
        raise EngineUnavailable("The engine stopped while loading the model.")

    # -- chat ---------------------------------------------------------------------------------

    def chat(  # type: ignore[override]
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        *,
        model: str | None = None,
        on_text: OnText | None = None,
        on_reasoning: OnText | None = None,
        stop: threading.Event | None = None,
        kv_state: str | None = None,
        save_state: bool = False,
    ) -> Completion:
        """Stream a reply; returns the Completion (cancelled when ``stop`` was set).

        Raises EngineUnavailable (with the text so far) when the engine goes away mid-reply.
        """
        extension: dict[str, Any] = dict(self._own_fields()["assistant"])
        if kv_state:
            extension |= {"kv_state": kv_state, "save_state": save_state}
        return super().chat(
            messages,
            params,
            model=model,
            on_text=on_text,
            on_reasoning=on_reasoning,
            stop=stop,
            extra={"assistant": extension},
            headers=self._request_headers(),
        )

    def _own_fields(self) -> dict[str, Any]:
        # Our own extension: the GUI and CLI want long chats trimmed, not refused.
        return {"assistant": {"truncate": True}}

    def _request_headers(self) -> dict[str, str]:
        return {"X-Request-Id": uuid.uuid4().hex}  # for Stop to cancel it in the engine

    def _sampling(self, params: GenerationParams) -> dict[str, Any]:
        body = sampling_fields(ServerKind.ASSISTANT, params)
        if params.ignore_eos:
            body["ignore_eos"] = True
        return body

    def _on_stop(self, request_id: str | None) -> None:
        if request_id:
            self.cancel(request_id)

    def _events_of(self, path: str, body: dict[str, Any], what: str) -> Iterator[dict[str, Any]]:
        """The events of one of the engine's own streams (a load's progress)."""
        yield from self._events(path, body, {}, None, chat=False, doing=what)

    def _connection_error(self, exc: httpx.HTTPError, doing: str) -> AssistantError:
        if doing == "before answering":
            return EngineUnavailable(f"The engine closed the connection without answering ({exc}).")
        return EngineUnavailable(f"The engine stopped answering {doing} ({exc}).")

    def _cut_midway(self) -> EngineUnavailable:
        return EngineUnavailable("The engine stopped in the middle of the reply.")

    def _raise_for_status(
        self, status: int, body: Any, headers: httpx.Headers, *, retryable: bool = False
    ) -> None:
        if status < 400:
            return
        error = body.get("error") if isinstance(body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        message = _error_message(body) or f"The engine answered HTTP {status}."
        if status == 404 and code == "model_not_found":
            raise InvalidModelFile(message)
        if status in (400, 404):
            raise GenerationError(message)
        if status in (401, 403):
            raise AssistantError(f"The engine refused the request: {message}")
        if status == 429:
            raise EngineBusy(message)
        raise GenerationError(message)  # the engine's own sentence

    def _error_sentence(self, error: Any) -> str:
        return _error_message({"error": error}) or "Generation failed."
