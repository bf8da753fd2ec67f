"""The list of conversations: listing, search, rename, delete and export.

The open chat is the session's (ui/session.py); deleting the conversation it shows, or one whose
reply is streaming, goes through ``ChatSession.forget`` first.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from assistant import files
from assistant.chat import turn
from assistant.conversations.export import ExportFormat, conversation_text
from assistant.conversations.storage import Store
from assistant.errors import StorageError
from assistant.ui.session import ChatSession
from assistant.ui.workers import run_task

log = logging.getLogger(__name__)


class ConversationsController(QObject):
    """Signals:
    conversations_changed(list): Conversation records, most recent first.
    search_results(str, list): the query and its SearchHit records.
    export_finished(str): the path written.
    notice(str), error(str): a note, or a failure, to show; the app keeps running.
    """

    conversations_changed = Signal(list)
    search_results = Signal(str, list)
    export_finished = Signal(str)
    notice = Signal(str)
    error = Signal(str)

    def __init__(self, store: Store, session: ChatSession, parent: QObject | None = None):
        super().__init__(parent)
        self.store = store
        self._session = session
        session.conversations_touched.connect(self.refresh)

    @Slot()
    def refresh(self) -> None:
        try:
            self.conversations_changed.emit(self.store.conversations())
        except StorageError as exc:
            self.error.emit(str(exc))

    def title_of(self, conversation_id: int) -> str:
        try:
            return self.store.conversation(conversation_id).title
        except StorageError as exc:
            self.error.emit(str(exc))
            return ""

    @Slot(str)
    def search(self, query: str) -> None:
        """Full-text search over every message (FTS5 answers in milliseconds)."""
        query = query.strip()
        if not query:
            self.search_results.emit("", [])
            return
        try:
            hits = self.store.search(query)
        except StorageError as exc:
            self.error.emit(str(exc))
            hits = []
        self.search_results.emit(query, hits)

    @Slot(int, str)
    def rename(self, conversation_id: int, title: str) -> None:
        title = title.strip()
        if not title:
            return
        try:
            self.store.rename_conversation(conversation_id, title)
        except StorageError as exc:
            self.error.emit(str(exc))
        self.refresh()

    @Slot(int)
    def delete(self, conversation_id: int) -> None:
        self._session.forget(conversation_id)
        try:
            turn.delete_conversation(self.store, conversation_id)
        except StorageError as exc:
            self.error.emit(str(exc))
        self.refresh()

    @Slot()
    def delete_all(self) -> None:
        """Wipe every conversation (and VACUUM the file); a streaming reply stops first."""
        self._session.forget(None)
        try:
            count = turn.delete_all_conversations(self.store)
        except StorageError as exc:
            self.error.emit(str(exc))
            return
        finally:
            self.refresh()
        self.notice.emit(f"Deleted all {count} conversations.")

    def export(self, conversation_id: int, path: str, fmt: ExportFormat) -> None:
        """Write a conversation as Markdown or JSON; the file is written off the GUI thread."""
        try:
            text = conversation_text(self.store, conversation_id, fmt)
        except StorageError as exc:
            self.error.emit(str(exc))
            return
        run_task(
            _write_text,
            path,
            text,
            on_done=self.export_finished.emit,
            on_error=lambda exc: self.error.emit(f"Could not export the conversation: {exc}"),
        )


def _write_text(path: str, text: str) -> str:
    files.write_private_text(Path(path), text)  # an export is as private as the chat
    return path
