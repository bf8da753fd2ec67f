"""Remote engines: OpenAI-compatible servers on other machines (llama-server, vLLM, Ollama,
LM Studio, another Assistant) that the user adds by name, URL and key.

What an engine is, how its URL is written, what kind of server it is and which request fields it
takes, and the list of them kept in Settings. Qt-free and network-free; the talking is done by
``assistant.openai_client``.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from assistant.errors import AssistantError

if TYPE_CHECKING:
    from assistant.engine.records import GenerationParams
    from assistant.settings import Settings

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 40
# The name the built-in engine goes by where engines are listed (`assistant engines list`,
# `chat --engine local`).
LOCAL_ENGINE = "local"


class ServerKind(enum.StrEnum):
    """The server behind an engine's URL, as far as its requests differ."""

    ASSISTANT = "assistant"  # another Assistant's `assistant serve`
    LLAMA_CPP = "llama.cpp"  # llama-server
    LLAMA_CPP_PYTHON = "llama-cpp-python"  # python -m llama_cpp.server
    VLLM = "vllm"
    OLLAMA = "ollama"
    LM_STUDIO = "lm-studio"
    OPENAI = "openai"  # anything else: the standard fields only

    @property
    def label(self) -> str:
        return _KIND_LABELS[self]


_KIND_LABELS = {
    ServerKind.ASSISTANT: "Assistant",
    ServerKind.LLAMA_CPP: "llama-server",
    ServerKind.LLAMA_CPP_PYTHON: "llama-cpp-python",
    ServerKind.VLLM: "vLLM",
    ServerKind.OLLAMA: "Ollama",
    ServerKind.LM_STUDIO: "LM Studio",
    ServerKind.OPENAI: "OpenAI-compatible",
}

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
class RemoteEngine:
    """One remote engine the user added. ``api_key`` is never shown in a repr or a log."""

    name: str
    url: str  # the API's base URL, up to and including /v1 (see normalise_url)
    api_key: str | None = field(default=None, repr=False)
    # A PEM file of the certificate authorities to trust for this engine (instead of the
    # system's), for a server with a certificate of its own.
    ca_bundle: str | None = None
    # None until the engine has been reached once; then what detect_kind() found.
    kind: ServerKind | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def is_loopback(self) -> bool:
        """Whether it runs on this very machine (another port): nothing then leaves it."""
        host = self.host
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RemoteEngine:
        kind = str(data.get("kind"))
        return cls(
            name=check_name(str(data["name"])),
            url=normalise_url(str(data["url"])),
            api_key=str(data["api_key"]) if data.get("api_key") else None,
            ca_bundle=str(data["ca_bundle"]) if data.get("ca_bundle") else None,
            kind=ServerKind(kind) if kind in ServerKind._value2member_map_ else None,
        )


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


def check_name(name: str) -> str:
    """The engine's name, stripped; AssistantError with the reason when it cannot be one."""
    name = name.strip()
    if not name:
        raise AssistantError("An engine needs a name, such as gpu-box.")
    if len(name) > MAX_NAME_LENGTH:
        raise AssistantError(f"An engine's name can be at most {MAX_NAME_LENGTH} characters.")
    if "/" in name or any(not c.isprintable() for c in name):
        raise AssistantError("An engine's name cannot contain '/' or control characters.")
    if name.lower() == LOCAL_ENGINE:
        raise AssistantError(f"'{LOCAL_ENGINE}' is the name of the engine on this machine.")
    return name


def normalise_url(url: str) -> str:
    """The API's base URL: http(s)://host[:port]/v1 for a bare address, else the path as given.

    Accepts what people paste: ``http://box:8080``, ``http://box:8080/v1/``, even the whole
    ``.../v1/chat/completions``.
    """
    text = url.strip()
    if "@" in text.split("?")[0].split("#")[0]:
        # Checked first, and the text never repeated: it may hold a password or key.
        raise AssistantError("Give the engine's key as its API key, not inside the URL.")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise AssistantError(
            f"'{text}' is not an engine address: give one like http://gpu-box:8080/v1 "
            "(http:// or https://)."
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise AssistantError(f"'{text}' has no valid port number.") from None
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        raise AssistantError(f"'{parts.hostname}' is not a valid host name.") from None
    path = parts.path.rstrip("/")
    for suffix in ("/chat/completions", "/completions", "/models"):
        path = path.removesuffix(suffix)
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, "", ""))


def writer_label(engine: str | None, model: str | None) -> str:
    """Who wrote a reply, as shown: "gpu-box / model" for a remote engine, else the model."""
    if engine:
        return f"{engine} / {model or '?'}"
    return model or ""


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


def engines_from_json(raw: object) -> list[RemoteEngine]:
    """The engines saved in the settings file; a damaged entry is skipped (and logged)."""
    engines: list[RemoteEngine] = []
    for entry in raw if isinstance(raw, list) else []:
        try:
            engines.append(RemoteEngine.from_json(entry))
        except (AssistantError, AttributeError, KeyError, TypeError, ValueError) as exc:
            log.warning("Ignoring a damaged remote engine in the settings: %s", exc)
    return engines
