"""User settings: one dataclass, saved as JSON atomically."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from assistant import files, paths
from assistant.endpoints import RemoteEngine, engines_from_json

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = "You are a helpful, concise assistant."


@dataclass
class Settings:
    # File name (in the models folder) or absolute path of the model picked last.
    default_model: str | None = None
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    n_ctx: int = 4096
    max_tokens: int = 1024
    temperature: float = 0.7
    top_p: float = 0.95
    # -1: let the fit estimate decide how many layers go to the GPU.
    n_gpu_layers: int = -1
    # A Hugging Face token for gated repositories (HF_TOKEN wins when set). The file is
    # written readable by its owner only.
    hf_token: str | None = None
    # CPU threads for llama.cpp; 0 = one per physical core.
    threads: int = 0
    # The Local API: other apps on this machine may use the engine (off unless the user turns
    # it on). Its key is generated once and shown in Settings; the file is owner-only.
    local_api: bool = False
    api_port: int = 8484
    api_key: str | None = None
    # Requests the engine serves at once while the Local API is on (continuous batching); 0 sizes
    # it from memory. The app alone uses one.
    slots: int = 0
    # Remote engines (OpenAI-compatible servers elsewhere), with their keys: this file is
    # owner-only, like the Hugging Face token above.
    engines: list[RemoteEngine] = field(default_factory=list)
    # Local only: every remote engine is hidden and refused.
    local_only: bool = False
    # MCP servers whose tools chats may use, as Claude Desktop, LM Studio and Jan write them
    # ("mcpServers": {name: {"command", "args", "env"} or {"url", "headers"}}).
    mcp_servers: dict[str, dict] = field(default_factory=dict)
    # Tools the person allowed for good ("server/tool"); every other call is asked about.
    allowed_tools: list[str] = field(default_factory=list)
    window_geometry: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def ensure_api_key(self) -> str:
        """The Local API key, generated (and saved by the caller) the first time."""
        if not self.api_key:
            import secrets

            self.api_key = "sk-assistant-" + secrets.token_urlsafe(24)
        return self.api_key

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """Read the settings; a missing or damaged file gives the defaults (logged, not fatal)."""
        path = path or paths.settings_path()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("Ignoring unreadable settings file %s: %s", path, exc)
            return cls()
        if not isinstance(raw, dict):
            log.warning("Ignoring settings file %s: not a JSON object", path)
            return cls()
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["engines"] = engines_from_json(values.get("engines"))
        return cls(**values)

    def save(self, path: Path | None = None) -> None:
        """Write atomically: a crash mid-write leaves the old file, never half a file."""
        files.write_private_json(path or paths.settings_path(), dataclasses.asdict(self))
