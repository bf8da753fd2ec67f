"""One turn's lifecycle, the same for the GUI and the CLI: store the user's message, start the
reply row, checkpoint it while it streams, finish it with its reason and figures.

The user's words are committed before anything is sent to an engine, and the reply row exists
from the first token on, so a crash anywhere (the engine's, the app's, the machine's) loses at
most ``CHECKPOINT_INTERVAL_S`` of the reply and never the question.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from assistant import paths
from assistant.conversations.storage import Conversation, Message, Store
from assistant.endpoints import writer_label
from assistant.errors import StorageError
from assistant.models import library
from assistant.records import Completion, FinishReason

log = logging.getLogger(__name__)

# A streaming reply is written to the database at most this often.
CHECKPOINT_INTERVAL_S = 0.5
TITLE_LENGTH = 48


class TurnState(enum.StrEnum):
    """Where the open chat's turn is: nothing running, a reply streaming, or being stopped."""

    IDLE = "idle"
    GENERATING = "generating"
    STOPPING = "stopping"


@dataclass(frozen=True)
class ModelChoice:
    """The model a reply is asked of: a file on this machine, or a model of a remote engine."""

    model: str  # this machine: the file's path; a remote engine: its model id
    engine: str | None = None  # the remote engine's name; None: this machine

    @classmethod
    def local(cls, path: Path) -> ModelChoice:
        return cls(str(path))

    @property
    def is_remote(self) -> bool:
        return self.engine is not None

    @property
    def path(self) -> Path:
        assert self.engine is None, "a remote model has no path here"
        return Path(self.model)

    @property
    def model_file(self) -> str:
        """What a reply records as its model: the file name, or the remote model id."""
        return self.model if self.is_remote else Path(self.model).name

    @property
    def reference(self) -> str:
        """What the conversation records: the library's reference, or the remote model id."""
        return self.model if self.is_remote else library.model_reference(Path(self.model))

    @property
    def label(self) -> str:
        return writer_label(self.engine, self.model_file)


def title_from(text: str) -> str:
    """A conversation's title from its first message: the first line, elided."""
    stripped = text.strip()
    first = stripped.splitlines()[0].strip() if stripped else "New chat"
    return first if len(first) <= TITLE_LENGTH else first[: TITLE_LENGTH - 1].rstrip() + "…"


def begin_turn(
    store: Store,
    conversation_id: int | None,
    text: str,
    *,
    model: ModelChoice | Path,
    system_prompt: str | None = None,
    settings: str | None = None,
) -> tuple[Conversation, Message]:
    """Store the user's message (in a new conversation when ``conversation_id`` is None)."""
    choice = model if isinstance(model, ModelChoice) else ModelChoice.local(model)
    if conversation_id is None:
        conversation = store.create_conversation(
            title_from(text),
            model=choice.reference,
            system_prompt=system_prompt or None,
            engine=choice.engine,
            settings=settings,
        )
    else:
        conversation = store.conversation(conversation_id)
    message = store.add_message(conversation.id, "user", text)
    return conversation, message


def delete_conversation(store: Store, conversation_id: int) -> None:
    """Delete a conversation everywhere it lives: the database, and the KV cache an engine
    saved for it (which holds its tokens)."""
    # The KV cache first: if the database fails after its commit, the tokens are gone anyway.
    forget_kv_state(paths.kv_state_path(conversation_id))
    store.delete_conversation(conversation_id)


def delete_all_conversations(store: Store) -> int:
    """Delete every conversation and every saved KV cache; returns how many there were."""
    for leftover in paths.kv_cache_dir().iterdir():
        leftover.unlink(missing_ok=True)
    return store.delete_all_conversations()


def forget_kv_state(state: Path) -> None:
    """A saved KV cache, its metadata, and a half-written one a crash may have left."""
    for suffix in ("", ".json", ".tmp"):
        state.with_name(state.name + suffix).unlink(missing_ok=True)


class Reply:
    """The assistant's reply row while it streams; finish() exactly once."""

    def __init__(
        self,
        store: Store,
        conversation_id: int,
        model: ModelChoice | Path,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.store = store
        self._clock = clock
        self.conversation_id = conversation_id
        self.choice = model if isinstance(model, ModelChoice) else ModelChoice.local(model)
        store.set_conversation_model(conversation_id, self.choice.reference, self.choice.engine)
        self.message = store.start_reply(
            conversation_id, self.choice.model_file, self.choice.engine
        )
        self._parts: list[str] = []
        self._last_checkpoint = clock()
        self._checkpointed = 0
        self.finished = False

    @property
    def message_id(self) -> int:
        return self.message.id

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def append(self, piece: str) -> None:
        """Add streamed text; written to the database about every CHECKPOINT_INTERVAL_S."""
        if piece:
            self._parts.append(piece)
        now = self._clock()
        if now - self._last_checkpoint >= CHECKPOINT_INTERVAL_S:
            self.checkpoint()
            self._last_checkpoint = now

    def checkpoint(self) -> None:
        size = sum(len(p) for p in self._parts)
        if size == self._checkpointed:
            return
        try:
            self.store.checkpoint_reply(self.message.id, self.text)
            self._checkpointed = size
        except StorageError as exc:
            log.warning("Checkpoint failed: %s", exc)

    def finish(
        self, completion: Completion | None, reason: FinishReason | None = None
    ) -> Message | None:
        """Store the final text (the engine's when it has it), reason and figures."""
        if self.finished:
            return None
        self.finished = True
        text = completion.text if completion is not None and completion.text else self.text
        finish_reason = reason or (completion.finish_reason if completion else FinishReason.ERROR)
        try:
            if completion is None:
                return self.store.finish_reply(self.message.id, text, finish_reason)
            return self.store.finish_reply(
                self.message.id,
                text,
                finish_reason,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                duration_ms=round(completion.duration_s * 1000),
                ttft_ms=round(completion.ttft_s * 1000),
                error=completion.error if finish_reason == FinishReason.ERROR else None,
                reasoning=completion.reasoning or None,
                reasoning_ms=round(completion.reasoning_s * 1000),
            )
        except StorageError as exc:
            # e.g. the conversation was deleted while it streamed.
            log.info("Could not store the finished reply: %s", exc)
            return None
