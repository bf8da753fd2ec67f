"""The reply streaming now, for the open chat's session (ui/session.py).

Tokens arrive one by one from the engine threads; the views get them in batches every
BATCH_INTERVAL_MS, and the reply checkpoints itself into the database while it streams.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from assistant.chat import turn
from assistant.errors import AssistantError
from assistant.records import Completion, FinishReason
from assistant.ui.engine_link import EngineLink

log = logging.getLogger(__name__)

BATCH_INTERVAL_MS = 40


@dataclass
class StreamingReply:
    """The reply being generated right now: its row (the turn lifecycle) and what the views
    have not been shown yet."""

    reply: turn.Reply
    pending: list[str] = field(default_factory=list)
    # The thinking not shown yet (it is stored with the reply when it ends).
    pending_reasoning: list[str] = field(default_factory=list)

    @property
    def message_id(self) -> int:
        return self.reply.message_id

    @property
    def conversation_id(self) -> int:
        return self.reply.conversation_id

    @property
    def text(self) -> str:
        return self.reply.text + "".join(self.pending)


class ReplyStream(QObject):
    """Gathers the streaming reply's text from both engine workers and hands it on in batches.

    Signals:
    text_appended(int, str): the reply's conversation id, and a batch of its text (already
        appended to the reply, which checkpoints itself).
    reasoning_appended(int, str): the reply's conversation id, and a batch of its thinking.
    sources_noted(str): a note about the documents' search (nothing matched, or it failed), or
        about a tool server that is not available.
    finished(object, object): the Completion, and the turn.Reply it ends, not yet finished (None
        when no reply was streaming); everything received has been handed on before.
    """

    text_appended = Signal(int, str)
    sources_noted = Signal(str)
    reasoning_appended = Signal(int, str)
    finished = Signal(Completion, object)

    def __init__(self, link: EngineLink, parent: QObject | None = None):
        super().__init__(parent)
        self._current: StreamingReply | None = None
        self._batch_timer = QTimer(self)
        self._batch_timer.setInterval(BATCH_INTERVAL_MS)
        self._batch_timer.timeout.connect(self.flush)
        for worker in (link.engine, link.remote):
            worker.text_generated.connect(self._on_text_generated)
            worker.reasoning_generated.connect(self._on_reasoning_generated)
            worker.generation_finished.connect(self._on_generation_finished)
        link.engine.sources_found.connect(self._on_sources_found)
        link.engine.tool_calls_updated.connect(self._on_tool_calls)
        link.engine.tools_noted.connect(self.sources_noted)

    @property
    def current(self) -> StreamingReply | None:
        """The reply streaming now, or None."""
        return self._current

    def start(self, reply: turn.Reply) -> None:
        """Stream into this reply from now on; its text is handed on every BATCH_INTERVAL_MS."""
        self._current = StreamingReply(reply)
        self._batch_timer.start()

    def shutdown(self) -> None:
        """The app is closing: store what the reply streaming now has received."""
        self._batch_timer.stop()
        if self._current is not None:
            # The worker's finish will not be delivered any more: store what we have.
            streaming, self._current = self._current, None
            streaming.reply.append("".join(streaming.pending))
            streaming.reply.finish(None, FinishReason.CANCELLED)

    # --- worker signals, delivered on the GUI thread ---------------------------------------

    @Slot(str)
    def _on_text_generated(self, piece: str) -> None:
        if self._current is not None:
            self._current.pending.append(piece)

    @Slot(list)
    def _on_sources_found(self, found: list) -> None:
        """The passages of the person's documents the reply is given: kept with it."""
        errors = [s["error"] for s in found if "error" in s]
        if errors:
            self.sources_noted.emit(errors[0])
        if self._current is None or errors:
            return
        if not found:
            self.sources_noted.emit(
                "Nothing in this chat's documents matched the question; answering without them."
            )
            return
        self._keep("set_sources", found)

    @Slot(list)
    def _on_tool_calls(self, calls: list) -> None:
        """The reply's tool calls so far: kept with it as each ends (a crash loses none)."""
        if self._current is not None:
            self._keep("set_tool_calls", calls)

    def _keep(self, setter: str, value: list) -> None:
        """Store ``value`` with the streaming reply (Store.set_sources, set_tool_calls)."""
        assert self._current is not None
        reply = self._current.reply
        try:
            getattr(reply.store, setter)(reply.message_id, value)
        except AssistantError as exc:
            log.warning("Could not store the reply's %s: %s", setter.removeprefix("set_"), exc)

    @Slot(str)
    def _on_reasoning_generated(self, piece: str) -> None:
        if self._current is not None:
            self._current.pending_reasoning.append(piece)

    @Slot()
    def flush(self) -> None:
        """Hand the views what arrived since the last tick; the reply checkpoints itself."""
        streaming = self._current
        if streaming is not None and streaming.pending_reasoning:
            thought = "".join(streaming.pending_reasoning)
            streaming.pending_reasoning.clear()
            self.reasoning_appended.emit(streaming.conversation_id, thought)
        if streaming is None or not streaming.pending:
            return
        batch = "".join(streaming.pending)
        streaming.pending.clear()
        streaming.reply.append(batch)
        self.text_appended.emit(streaming.conversation_id, batch)

    @Slot(object)
    def _on_generation_finished(self, completion: Completion) -> None:
        self.flush()
        self._batch_timer.stop()
        streaming, self._current = self._current, None
        self.finished.emit(completion, streaming.reply if streaming is not None else None)
