"""What the engine and its clients say to each other: generation settings, the loaded model,
a finished reply, and the configuration an engine process runs with.

Plain dataclasses with JSON round trips; no llama.cpp and no Qt, so clients (the GUI, the CLI)
import them without loading either.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# How a supervised engine process gets its keys: in the environment, never on the command line
# where other users could read them.
KEY_ENV = "ASSISTANT_ENGINE_KEY"  # the owner's key (the app's; its requests go first)
API_KEY_ENV = "ASSISTANT_API_KEY"  # the Local API's key, for other apps


class FinishReason(enum.StrEnum):
    """Why a reply ended. The values are the database's CHECK strings (migrations.py)."""

    STOP = "stop"  # the model ended it, or a stop string did
    LENGTH = "length"  # max_tokens, or the context is full
    CANCELLED = "cancelled"  # Stop, or the client went away
    ERROR = "error"  # the engine failed or went away; Completion.error says why
    INTERRUPTED = "interrupted"  # found unfinished after a crash (Store writes it, not engines)

    @property
    def label(self) -> str:
        """How a reply's footer says it ("" for a reply that ended as it should)."""
        return _FINISH_LABELS[self]


_FINISH_LABELS = {
    FinishReason.STOP: "",
    FinishReason.LENGTH: "hit the length limit",
    FinishReason.CANCELLED: "stopped",
    FinishReason.ERROR: "failed",
    FinishReason.INTERRUPTED: "interrupted",
}


# The embedding model documents use when none is chosen: all-MiniLM-L6-v2, converted from its
# Python package (documents/embedding_models.py) into the embedding models folder.
BUILTIN_EMBEDDING_FILE = "all-MiniLM-L6-v2.F16.gguf"


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 1024
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int | None = None
    ignore_eos: bool = False  # keep going past end-of-generation tokens (benchmarks)
    stop: tuple[str, ...] = ()  # extra stop strings, on top of the chat format's own
    # A llama.cpp grammar (GBNF) every reply token must follow: structured output, tool calls.
    grammar: str | None = None
    # The tools offered (tools/calls.py ToolRequest as JSON): rendered into the prompt.
    tools: str | None = None


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    quantization: str | None
    n_layers: int
    n_ctx: int
    n_gpu_layers: int
    backend: str  # "CPU", "CUDA", "Metal", "Vulkan"... as llama.cpp reports
    backend_note: str
    template_note: str | None
    load_seconds: float
    # A sentence when the engine runs in a reduced configuration after crashes (else "").
    safe_mode_note: str = ""
    # Requests served at once (continuous batching), each with n_ctx tokens of context.
    n_slots: int = 1

    @property
    def name(self) -> str:
        """The model's id on the wire: its file name."""
        return self.path.name

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["path"] = str(self.path)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadedModel:
        values = _known_fields(cls, data)
        values["path"] = Path(values["path"])
        return cls(**values)


@dataclass
class Completion:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int  # prompt tokens reused from the KV cache of the previous turn
    ttft_s: float
    duration_s: float
    tokens_per_s: float
    context_tokens: int  # tokens in the context after this reply
    trimmed_messages: int  # old messages dropped to fit the context window
    model_file: str
    error: str | None = None
    # The thinking that came apart from the answer (<think>...</think>, reasoning_content).
    reasoning: str = ""
    reasoning_s: float = 0.0  # how long the model thought before it answered

    @property
    def is_empty(self) -> bool:
        """It ended (as it should, or at its length) with no answer text: say so, never
        silently (small models do end a reply at once now and then)."""
        return is_empty_reply(self.text, self.finish_reason)

    @property
    def empty_note(self) -> str:
        """What to say of it when ``is_empty`` ("" otherwise)."""
        return empty_reply_note(self.text, self.reasoning, self.finish_reason)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Completion:
        values = _known_fields(cls, data)
        try:
            values["finish_reason"] = FinishReason(values["finish_reason"])
        except ValueError:  # a newer peer's reason: it ended, as far as we can tell
            values["finish_reason"] = FinishReason.STOP
        return cls(**values)

    @classmethod
    def failed(cls, message: str, text: str = "", model_file: str = "") -> Completion:
        """A reply that ended in an error, keeping whatever text arrived before it."""
        return cls(
            text=text,
            finish_reason=FinishReason.ERROR,
            prompt_tokens=0,
            completion_tokens=0,
            cached_tokens=0,
            ttft_s=0.0,
            duration_s=0.0,
            tokens_per_s=0.0,
            context_tokens=0,
            trimmed_messages=0,
            model_file=model_file,
            error=message,
        )


# What the chat, the CLI and an export say of a reply that ended without text.
EMPTY_REPLY = "the model ended its reply without any text"
# ... and of one whose every token went to its thinking (a reasoning model at max_tokens).
ONLY_THOUGHT = "the model spent the whole reply thinking and wrote no answer"


def empty_reply_note(text: str, reasoning: str | None, finish_reason: str | None) -> str:
    """What to say of a reply with no answer text ("" when it has one, or failed, or was
    stopped by the person)."""
    if not is_empty_reply(text, finish_reason):
        return ""
    if (reasoning or "").strip() and finish_reason == FinishReason.LENGTH:
        return f"{ONLY_THOUGHT}; a longer reply limit (Chat settings) gives it room"
    return EMPTY_REPLY


def is_empty_reply(text: str, finish_reason: str | None) -> bool:
    """A reply that ended (not failed, not stopped by the person) with no answer text."""
    return not text.strip() and finish_reason in (FinishReason.STOP, FinishReason.LENGTH)


@dataclass(frozen=True)
class EngineConfig:
    """How an engine process drives llama.cpp; the supervisor steps it down after crashes."""

    # llama.cpp's extra weight buffer types (AMX, CPU repacking). Off is the fix for the AMX
    # crash on CPUs whose kernel or hypervisor does not grant tile data per thread.
    extra_bufts: bool = True
    # GPU layers: -1 lets the fit estimate decide, 0 keeps everything on the CPU.
    gpu_layers: int = -1
    # An upper bound on the context size, 0 for none (the request's own size then).
    max_ctx: int = 0
    # How many fallback steps were taken to get here (0: the normal configuration).
    step: int = 0
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EngineConfig:
        values = _known_fields(cls, data)
        values["notes"] = tuple(values.get("notes", ()))
        return cls(**values)


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The values of ``data`` that are fields of ``cls``: a newer peer may send more."""
    known = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in known}
