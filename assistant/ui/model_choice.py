"""The open chat's model, for its session (ui/session.py): the one loaded on this machine or a
model of a remote engine, whether it can be asked now, and the conversation remembering it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from assistant.chat.turn import ModelChoice
from assistant.conversations.storage import Conversation, Store
from assistant.errors import StorageError
from assistant.models.library import model_reference
from assistant.records import LoadedModel
from assistant.settings import Settings
from assistant.ui.engine_link import EngineLink
from assistant.ui.model_manager import ModelManager
from assistant.ui.remote_engines import RemoteEngines


class ChatModelChoice(QObject):
    """Which model the open chat asks: a remote one when set, else the one loaded here.

    Signals:
    remote_changed(object): the remote model the open chat uses now (a ModelChoice), or None
        when it uses the model loaded on this machine.
    stop_requested(): the reply streaming now must stop before the model changes (a load is
        queued behind the reply on the engine thread; a remote engine gone sends no more).
    notice(str), error(str): a note, or why the chosen model cannot be used now.
    """

    remote_changed = Signal(ModelChoice)  # or None
    stop_requested = Signal()
    notice = Signal(str)
    error = Signal(str)

    def __init__(
        self,
        store: Store,
        settings: Settings,
        models: ModelManager,
        link: EngineLink,
        remote_engines: RemoteEngines,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.store = store
        self.settings = settings
        self.models = models
        self.remote_engines = remote_engines
        # The open chat's model on a remote engine; None: the model loaded here.
        self._remote: ModelChoice | None = None
        link.remote.unreachable.connect(self._on_remote_unreachable)

    @property
    def remote(self) -> ModelChoice | None:
        """The remote model the open chat uses (None: the model loaded on this machine)."""
        return self._remote

    def choice(self) -> ModelChoice:
        """The model the next reply is asked of."""
        if self._remote is not None:
            return self._remote
        loaded = self.models.loaded
        assert loaded is not None
        return ModelChoice.local(loaded.path)

    def can_ask(self) -> bool:
        """Whether a reply can be asked of the chosen model now (without saying why not)."""
        if self._remote is not None:
            return True
        return self.models.loaded is not None and not self.models.is_loading

    def check_ready(self) -> bool:
        """Whether a reply can be asked of the chosen model now; says why not when it cannot."""
        if self._remote is not None:
            return self._remote_usable(self._remote.engine or "")
        if self.models.is_loading:
            self.error.emit("The model is still loading; try again in a moment.")
            return False
        if self.models.loaded is None:
            self.error.emit("No model is loaded. Pick one above or add a GGUF file.")
            return False
        return True

    # --- choosing --------------------------------------------------------------------------

    def use_local(self, path: str, context_length: int) -> None:
        """Use this model of this machine (and as the default from now on)."""
        self.stop_requested.emit()  # the load is queued behind the reply on the engine thread
        self._set_remote(None)
        self.models.use(path, context_length)

    def use_remote(self, conversation_id: int | None, engine_name: str, model: str) -> None:
        """Use this model of a remote engine; the conversation (when saved) remembers it."""
        if not self._remote_usable(engine_name):
            self.remote_changed.emit(self._remote)  # the picker shows what is in use again
            return
        self.stop_requested.emit()
        self._set_remote(ModelChoice(model, engine=engine_name))
        if conversation_id is not None:
            try:
                self.store.set_conversation_model(conversation_id, model, engine_name)
            except StorageError as exc:
                self.error.emit(str(exc))

    def open(self, conversation: Conversation, context_length: int) -> None:
        """Go on with the model an opened conversation used, or say why it cannot be."""
        if not conversation.engine:
            self._set_remote(None)
            if conversation.model:
                self.models.use_reference(conversation.model, context_length)
            return
        engine_name, model = conversation.engine, conversation.model or ""
        if self.remote_engines.engine(engine_name) is None:
            why = (
                "“Local only” is on in Settings"
                if self.settings.local_only
                else "it is no longer among the engines in Settings"
            )
            self._set_remote(None)
            self.error.emit(
                f"This conversation used {engine_name} / {model}, a remote engine, but {why}. "
                "Its history is here; pick a model to go on with it."
            )
            return
        self._set_remote(ModelChoice(model, engine=engine_name))

    def reload(self, context_length: int) -> None:
        """Load the model here again with this context length (a remote one keeps its own)."""
        loaded = self.models.loaded
        if loaded is None or self._remote is not None:
            return
        self.stop_requested.emit()  # the load is queued behind the reply
        self.models.use(str(loaded.path), context_length)

    def remember_local(self, conversation_id: int | None, loaded: LoadedModel) -> None:
        """The open chat now uses this model of this machine: the conversation remembers it."""
        # A chat on a remote engine stays there: this model is for the chats that are not.
        if conversation_id is None or self._remote is not None:
            return
        try:
            self.store.set_conversation_model(conversation_id, model_reference(Path(loaded.path)))
        except StorageError as exc:
            self.error.emit(str(exc))

    def leave_gone_remote(self) -> bool:
        """A remote engine taken out of Settings (or "local only") is not used any more: the
        chat goes on with the model here. Returns whether it left one."""
        self.remote_engines.refresh()
        remote = self._remote
        if remote is None or self.remote_engines.engine(remote.engine or "") is not None:
            return False
        self.stop_requested.emit()  # not one more token from it
        self._set_remote(None)
        self.notice.emit(
            f"{remote.engine} is not used any more: this chat goes on with the model on this "
            "machine."
        )
        return True

    # --- remote engines --------------------------------------------------------------------

    def _set_remote(self, choice: ModelChoice | None) -> None:
        if choice != self._remote:
            self._remote = choice
            self.remote_changed.emit(choice)

    def _remote_usable(self, engine_name: str) -> bool:
        """Whether the app may use this remote engine now; says why not when it may not."""
        if self.remote_engines.engine(engine_name) is not None:
            return True
        why = "“Local only” is on" if self.settings.local_only else "it is no longer added"
        self.error.emit(f"{engine_name} cannot be used now: {why} (see Settings).")
        return False

    @Slot(str, str)
    def _on_remote_unreachable(self, _name: str, _problem: str) -> None:
        self.remote_engines.refresh()  # the picker shows it unavailable (or back) once asked
