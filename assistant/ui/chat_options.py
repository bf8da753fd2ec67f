"""The open chat's own options, for its session (ui/session.py): its generation settings and its
system prompt, kept for a new chat until its first message saves them, and stored with a saved
one."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from assistant.chat.settings import ChatSettings
from assistant.conversations.storage import Store
from assistant.errors import StorageError
from assistant.settings import Settings


class ChatOptions(QObject):
    """Signals:
    chat_settings_changed(object): the open chat's own generation settings (ChatSettings),
        on opening it and when they change.
    error(str): storing an option failed; the app keeps running.
    """

    chat_settings_changed = Signal(ChatSettings)
    error = Signal(str)

    def __init__(self, store: Store, settings: Settings, parent: QObject | None = None):
        super().__init__(parent)
        self.store = store
        self.settings = settings
        # The system prompt chosen for the new chat before its first message saves it.
        self._new_system_prompt: str | None = None
        # The open chat's own generation settings (for a new chat: saved with it).
        self._chat_settings = ChatSettings()

    # --- the open chat's own generation settings -------------------------------------------

    @property
    def chat_settings(self) -> ChatSettings:
        return self._chat_settings

    def context_length(self) -> int:
        return self._chat_settings.context_length(self.settings)

    def opened(self, chosen: ChatSettings) -> None:
        """A chat was opened (or a new one started) with these settings."""
        self._new_system_prompt = None
        self._set_chat_settings(chosen)

    def _set_chat_settings(self, chosen: ChatSettings) -> None:
        self._chat_settings = chosen
        self.chat_settings_changed.emit(chosen)

    def set_chat_settings(self, conversation_id: int | None, chosen: ChatSettings) -> bool:
        """The open chat's settings from now on (saved with it, when it is); returns whether
        its context length changed."""
        context_before = self.context_length()
        self._set_chat_settings(chosen)
        if conversation_id is not None:
            try:
                self.store.set_conversation_settings(conversation_id, chosen.to_json())
            except StorageError as exc:
                self.error.emit(str(exc))
        return self.context_length() != context_before

    # --- a conversation's own system prompt ------------------------------------------------

    @property
    def new_system_prompt(self) -> str | None:
        """The system prompt the new chat is saved with (None: the default from Settings)."""
        return self._new_system_prompt

    def new_chat_saved(self) -> None:
        """The new chat's first message saved it, with its system prompt."""
        self._new_system_prompt = None

    def system_prompt_of(self, conversation_id: int | None) -> str:
        """A conversation's own system prompt ("" when it uses the default from Settings).

        None stands for the new chat that has not been saved yet.
        """
        if conversation_id is None:
            return self._new_system_prompt or ""
        try:
            return self.store.conversation(conversation_id).system_prompt or ""
        except StorageError as exc:
            self.error.emit(str(exc))
            return ""

    def set_system_prompt(self, conversation_id: int | None, prompt: str) -> None:
        """Give a conversation its own system prompt; empty means use the default again."""
        value = prompt.strip() or None
        if conversation_id is None:
            self._new_system_prompt = value  # saved once its first message is sent
            return
        try:
            self.store.set_conversation_system_prompt(conversation_id, value)
        except StorageError as exc:
            self.error.emit(str(exc))
