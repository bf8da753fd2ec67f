"""A remote engine as the user added it (name, base URL, key, CA bundle, kind of server), how
its name and URL are written, and who wrote a reply. The records Settings keeps; the talking is
done by ``assistant.clients``."""

from __future__ import annotations

import enum
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from assistant.errors import AssistantError

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


def engines_from_json(raw: object) -> list[RemoteEngine]:
    """The engines saved in the settings file; a damaged entry is skipped (and logged)."""
    engines: list[RemoteEngine] = []
    for entry in raw if isinstance(raw, list) else []:
        try:
            engines.append(RemoteEngine.from_json(entry))
        except (AssistantError, AttributeError, KeyError, TypeError, ValueError) as exc:
            log.warning("Ignoring a damaged remote engine in the settings: %s", exc)
    return engines
