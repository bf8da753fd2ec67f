"""Remote engines: OpenAI-compatible servers on other machines (llama-server, vLLM, Ollama,
LM Studio, another Assistant) that the user adds by name, URL and key.

What kind of server an engine is and which request fields it takes, what probing one found, and
the list of them kept in Settings. Qt-free and network-free; the talking is done by
``assistant.clients.openai_client``, and the engine's own record is ``assistant.endpoints``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.endpoints import RemoteEngine, ServerKind, check_name, normalise_url
from assistant.errors import AssistantError
from assistant.records import GenerationParams
from assistant.settings import Settings

log = logging.getLogger(__name__)

# What each server writes as `owned_by` in GET /v1/models (their sources and documentation).
_OWNED_BY = {
    "assistant": ServerKind.ASSISTANT,
    "llamacpp": ServerKind.LLAMA_CPP,
    "me": ServerKind.LLAMA_CPP_PYTHON,
    "vllm": ServerKind.VLLM,
    "library": ServerKind.OLLAMA,
    "ollama": ServerKind.OLLAMA,
    "organization_owner": ServerKind.LM_STUDIO,
}


@dataclass(frozen=True)
class EngineStatus:
    """What probing an engine found: its models, or why it could not be reached."""

    engine: RemoteEngine
    models: tuple[str, ...] = ()
    problem: str | None = None  # the sentence to show while it is unavailable

    @property
    def reachable(self) -> bool:
        return self.problem is None

    @property
    def name(self) -> str:
        return self.engine.name


def engine_named(engines: Iterable[RemoteEngine], name: str) -> RemoteEngine | None:
    """The engine of that name; names are compared without case, as the user types them."""
    wanted = name.strip().lower()
    return next((e for e in engines if e.name.lower() == wanted), None)


def detect_kind(models: Iterable[Mapping[str, Any]]) -> ServerKind:
    """The kind of server, from the entries of its GET /v1/models."""
    for entry in models:
        kind = _OWNED_BY.get(str(entry.get("owned_by", "")).lower())
        if kind is not None:
            return kind
    return ServerKind.OPENAI


def sampling_fields(kind: ServerKind | None, params: GenerationParams) -> dict[str, Any]:
    """The sampling settings as request fields: the standard ones for every server, the
    extensions (top-k, min-p, repeat penalty) only for servers known to take them."""
    body: dict[str, Any] = {
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if params.seed is not None:
        body["seed"] = params.seed
    if params.stop:
        body["stop"] = list(params.stop)
    if kind in (
        ServerKind.ASSISTANT,
        ServerKind.LLAMA_CPP,
        ServerKind.LLAMA_CPP_PYTHON,
        ServerKind.LM_STUDIO,
    ):
        body |= {
            "top_k": params.top_k,
            "min_p": params.min_p,
            "repeat_penalty": params.repeat_penalty,
        }
    elif kind is ServerKind.VLLM:
        body |= {
            "top_k": params.top_k,
            "min_p": params.min_p,
            "repetition_penalty": params.repeat_penalty,
        }
    if kind is ServerKind.ASSISTANT:
        body["assistant"] = {"truncate": True}  # long chats trimmed, not refused
    return body


# -- the list in Settings --------------------------------------------------------------------


def find_engine(settings: Settings, name: str) -> RemoteEngine:
    """The engine of that name (case-insensitive); refused while Settings say local only."""
    if settings.local_only:
        raise AssistantError(
            f"“Local only” is on in Settings, so nothing is sent to remote engines ({name})."
        )
    engine = engine_named(settings.engines, name)
    if engine is not None:
        return engine
    known = ", ".join(e.name for e in settings.engines) or "none yet"
    raise AssistantError(
        f"There is no engine named {name.strip()!r} (added: {known}). "
        "Add one with `assistant engines add NAME URL`."
    )


def visible_engines(settings: Settings) -> list[RemoteEngine]:
    """The engines the app may use: none while "local only" is on."""
    return [] if settings.local_only else list(settings.engines)


def add_engine(
    settings: Settings,
    name: str,
    url: str,
    api_key: str | None = None,
    ca_bundle: str | None = None,
) -> RemoteEngine:
    """Check and add an engine to ``settings`` (the caller saves them)."""
    name = check_name(name)
    if engine_named(settings.engines, name) is not None:
        raise AssistantError(f"There is already an engine named {name}.")
    bundle = None
    if ca_bundle:
        path = Path(ca_bundle).expanduser()
        if not path.is_file():
            raise AssistantError(f"The CA bundle {ca_bundle} does not exist.")
        bundle = str(path.resolve())
    engine = RemoteEngine(name, normalise_url(url), (api_key or "").strip() or None, bundle)
    settings.engines = [*settings.engines, engine]
    return engine


def remove_engine(settings: Settings, name: str) -> RemoteEngine:
    engine = engine_named(settings.engines, name)
    if engine is None:
        raise AssistantError(f"There is no engine named {name.strip()!r}.")
    settings.engines = [e for e in settings.engines if e is not engine]
    return engine


def with_kind(settings: Settings, name: str, kind: ServerKind) -> None:
    """Remember what kind of server an engine turned out to be."""
    settings.engines = [
        dataclasses.replace(e, kind=kind) if e.name == name else e for e in settings.engines
    ]
