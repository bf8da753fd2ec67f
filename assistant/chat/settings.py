"""A conversation's own generation settings, and the presets people start from.

Each field left ``None`` follows the app's default (Settings), so changing a default changes
every chat that did not choose otherwise. Saved with the conversation as JSON (m006) and sent to
whichever engine writes its replies, here or remote.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any

from assistant.records import GenerationParams
from assistant.settings import Settings

log = logging.getLogger(__name__)


SAMPLING = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens", "seed")


@dataclass(frozen=True)
class ChatSettings:
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    max_tokens: int | None = None
    n_ctx: int | None = None  # the context length this chat's model is loaded with
    seed: int | None = None  # None: a new random seed for every reply
    # The collections of the person's documents this chat answers from (documents/).
    documents: tuple[str, ...] = ()
    # Whether this chat offers the tools of the person's MCP servers (tools/mcp_servers.py).
    tools: bool = False

    def params(self, settings: Settings) -> GenerationParams:
        """What the engine is asked for: this chat's choices over the app's defaults."""
        base = GenerationParams(
            max_tokens=settings.max_tokens, temperature=settings.temperature, top_p=settings.top_p
        )
        # The sampling fields alone: GenerationParams also has ``tools`` (the engine's JSON of
        # a request's tools), which this chat's ``tools`` switch is not.
        chosen = {name: getattr(self, name) for name in SAMPLING if getattr(self, name) is not None}
        return dataclasses.replace(base, **chosen)

    def context_length(self, settings: Settings) -> int:
        return int(self.n_ctx or settings.n_ctx)

    def with_preset(self, name: str) -> ChatSettings:
        """The sampling settings of a preset; length, context and seed stay as they are."""
        preset = PRESETS[name]
        return dataclasses.replace(
            preset,
            max_tokens=self.max_tokens,
            n_ctx=self.n_ctx,
            seed=self.seed,
            documents=self.documents,
            tools=self.tools,
        )

    def preset_name(self) -> str | None:
        """The preset these sampling settings are, if any."""
        for name in PRESETS:
            if self.with_preset(name) == self:
                return name
        return None

    def to_json(self) -> str | None:
        values = {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if v is not None and v != () and not (k == "tools" and v is False)
        }
        return json.dumps(values, sort_keys=True) if values else None

    @classmethod
    def from_json(cls, text: str | None) -> ChatSettings:
        """Parsed leniently: an unknown or ill-typed field is dropped, never an error."""
        if not text:
            return cls()
        try:
            data: Any = json.loads(text)
        except ValueError:
            log.warning("A conversation's settings are not JSON; using the defaults")
            return cls()
        if not isinstance(data, dict):
            return cls()
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = data.get(f.name)
            if f.name == "tools":
                if value is True:
                    values[f.name] = True
                continue
            if f.name == "documents":
                if isinstance(value, list):
                    values[f.name] = tuple(v for v in value if isinstance(v, str) and v)
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            values[f.name] = int(value) if f.type == "int | None" else float(value)
        return cls(**values)


PRESETS: dict[str, ChatSettings] = {
    # Low randomness: facts, code, extraction.
    "Precise": ChatSettings(temperature=0.2, top_p=0.9, top_k=20, min_p=0.1, repeat_penalty=1.05),
    # The app's and llama.cpp's usual defaults.
    "Balanced": ChatSettings(temperature=0.7, top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.1),
    # More varied wording: brainstorming, stories.
    "Creative": ChatSettings(
        temperature=1.1, top_p=0.98, top_k=100, min_p=0.02, repeat_penalty=1.05
    ),
}
