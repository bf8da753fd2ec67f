"""The open chat: which conversation it is, its model (here or on a remote engine), and its turns
(send, stop, regenerate, edit), each driven through the one turn lifecycle of assistant/chat.py.

Tokens arrive one by one from the engine threads; the views get them in batches every
BATCH_INTERVAL_MS, and the reply checkpoints itself into the database while it streams.

Over 400 lines: the open chat's state (its conversation, its model here or remote, the streaming
reply, the edit) is one thing, and each turn reads and changes all of it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from assistant import chat
from assistant.chat import ModelChoice, TurnState
from assistant.chat_settings import ChatSettings
from assistant.engine.records import Completion, FinishReason, LoadedModel
from assistant.errors import StorageError
from assistant.library import LocalModel, model_reference
from assistant.settings import Settings
from assistant.storage import Message, Store
from assistant.ui.engine_link import EngineLink
from assistant.ui.model_manager import ModelManager
from assistant.ui.remote_engines import RemoteEngines

log = logging.getLogger(__name__)

BATCH_INTERVAL_MS = 40
CONTEXT_SETTLE_MS = 700


@dataclass
class _Streaming:
    """The reply being generated right now: its row (the turn lifecycle) and what the views
    have not been shown yet."""

    reply: chat.Reply
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


class ChatSession(QObject):
    """Signals:
    conversation_opened(object, list): conversation id (None for a new, unsaved chat) and its
        Message records.
    message_added(object): a Message now stored (the user's turn).
    reply_started(object): the assistant Message row that is about to stream.
    reply_text_appended(str): a batch of streamed text for the open conversation.
    reply_finished(object): the stored assistant Message, complete.
    state_changed(str): a TurnState.
    edit_started(int, str): the user chose to edit this message; its text.
    edit_cancelled().
    stats_updated(object): the Completion of the last reply (speed, ttft, context).
    remote_changed(object): the remote model the open chat uses now (a ModelChoice), or None
        when it uses the model loaded on this machine.
    reasoning_appended(str): a batch of the streaming reply's thinking (a reasoning model's).
    chat_settings_changed(object): the open chat's own generation settings (ChatSettings),
        on opening it and when they change.
    conversations_touched(): a conversation was added or changed (the list shows it anew).
    notice(str), error(str): a note, or a failure, to show; the app keeps running.
    """

    conversation_opened = Signal(object, list)
    message_added = Signal(Message)
    reply_started = Signal(Message)
    reply_text_appended = Signal(str)
    reply_finished = Signal(Message)
    state_changed = Signal(str)
    edit_started = Signal(int, str)
    edit_cancelled = Signal()
    stats_updated = Signal(Completion)
    remote_changed = Signal(ModelChoice)  # or None
    reasoning_appended = Signal(str)
    chat_settings_changed = Signal(ChatSettings)
    conversations_touched = Signal()
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
        self._link = link
        self._conversation_id: int | None = None
        self._reply: _Streaming | None = None
        self._state = TurnState.IDLE
        self._editing_id: int | None = None
        # The system prompt chosen for the new chat before its first message saves it.
        self._new_system_prompt: str | None = None
        # The open chat's own generation settings (for a new chat: saved with it).
        self._chat_settings = ChatSettings()
        # The open chat's model on a remote engine; None: the model loaded here.
        self._remote: ModelChoice | None = None
        # A new context length reloads the model once the value has settled (a spin box sends
        # every step on its way there).
        self._context_timer = QTimer(self)
        self._context_timer.setSingleShot(True)
        self._context_timer.setInterval(CONTEXT_SETTLE_MS)
        self._context_timer.timeout.connect(self._apply_context_length)
        self._batch_timer = QTimer(self)
        self._batch_timer.setInterval(BATCH_INTERVAL_MS)
        self._batch_timer.timeout.connect(self._flush)
        for worker in (link.engine, link.remote):
            worker.text_generated.connect(self._on_text_generated)
            worker.reasoning_generated.connect(self._on_reasoning_generated)
            worker.generation_finished.connect(self._on_generation_finished)
        link.remote.retrying.connect(self.notice)
        link.remote.unreachable.connect(self._on_remote_unreachable)
        models.model_activated.connect(self._on_model_activated)
        models.model_imported.connect(self._on_model_imported)
        models.settings_applied.connect(self._on_settings_applied)

    # --- state the views may read ----------------------------------------------------------

    @property
    def conversation_id(self) -> int | None:
        return self._conversation_id

    @property
    def state(self) -> TurnState:
        return self._state

    @property
    def remote(self) -> ModelChoice | None:
        """The remote model the open chat uses (None: the model loaded on this machine)."""
        return self._remote

    @property
    def editing(self) -> int | None:
        return self._editing_id

    def can_send(self) -> bool:
        if self._state != TurnState.IDLE:
            return False
        if self._remote is not None:
            return True
        return self.models.loaded is not None and not self.models.is_loading

    # --- opening ---------------------------------------------------------------------------

    def open_latest(self) -> None:
        """Open the most recent conversation, or a new chat when there is none."""
        try:
            conversations = self.store.conversations()
        except StorageError as exc:
            self.error.emit(str(exc))
            conversations = []
        if conversations:
            self.open_conversation(conversations[0].id)
        else:
            self.new_conversation()

    @Slot()
    def new_conversation(self) -> None:
        """Start a blank chat; it is saved when its first message is sent."""
        self.cancel_edit()
        self._conversation_id = None
        self._new_system_prompt = None
        self._set_chat_settings(ChatSettings())
        self.conversation_opened.emit(None, [])

    @Slot(int)
    def open_conversation(self, conversation_id: int) -> None:
        self.cancel_edit()
        self._flush()  # text streamed so far goes to the conversation still on screen
        try:
            conversation = self.store.conversation(conversation_id)
            messages = self.store.messages(conversation_id)
        except StorageError as exc:
            self.error.emit(str(exc))
            return
        self._conversation_id = conversation_id
        self._new_system_prompt = None
        self._set_chat_settings(ChatSettings.from_json(conversation.settings))
        reply = self._reply
        if reply is not None and reply.conversation_id == conversation_id:
            # Still streaming: show everything received, not the last checkpoint.
            messages = [
                dataclasses.replace(m, content=reply.text) if m.id == reply.message_id else m
                for m in messages
            ]
        self.conversation_opened.emit(conversation_id, messages)
        if conversation.engine:
            self._use_remote_of_conversation(conversation.engine, conversation.model or "")
        else:
            self._set_remote(None)
            if conversation.model:
                self.models.use_reference(conversation.model, self._context_length())

    @Slot(int, int)
    def open_message(self, conversation_id: int, message_id: int) -> None:
        """Open a conversation on the branch that holds this message (a search hit)."""
        if self._reply is not None and self._reply.conversation_id == conversation_id:
            self.open_conversation(conversation_id)  # its branch is the one streaming
            return
        try:
            self.store.show_branch_of(message_id)
        except StorageError as exc:
            self.error.emit(str(exc))
        self.open_conversation(conversation_id)

    @Slot(int, int)
    def show_version(self, message_id: int, step: int) -> None:
        """Show another version of this turn (‹ -1, › +1): the history sent next changes too."""
        if self._conversation_id is None or self._state != TurnState.IDLE:
            return
        try:
            self.store.show_version(message_id, step)
        except StorageError as exc:
            self.error.emit(str(exc))
            return
        self._reopen()

    def _reopen(self) -> None:
        assert self._conversation_id is not None
        self.conversation_opened.emit(
            self._conversation_id, self.store.messages(self._conversation_id)
        )

    def forget(self, conversation_id: int | None) -> None:
        """This conversation (None: every one) is being deleted: stop its reply, and show a new
        chat if it is the open one."""
        if self._reply is not None and conversation_id in (None, self._reply.conversation_id):
            self.stop()
        if conversation_id is None or conversation_id == self._conversation_id:
            self.new_conversation()

    # --- the open chat's model -------------------------------------------------------------

    @Slot(str)
    def select_model(self, path: str) -> None:
        """Use this model of this machine for the open chat (and as the default from now on)."""
        if self._state != TurnState.IDLE:
            self.stop()  # the load is queued behind the reply on the engine thread
        self._set_remote(None)
        self.models.use(path, self._context_length())

    @Slot(str, str)
    def select_remote(self, engine_name: str, model: str) -> None:
        """Use this model of a remote engine for the open chat."""
        if not self._remote_usable(engine_name):
            self.remote_changed.emit(self._remote)  # the picker shows what is in use again
            return
        if self._state != TurnState.IDLE:
            self.stop()
        self._set_remote(ModelChoice(model, engine=engine_name))
        if self._conversation_id is not None:
            try:
                self.store.set_conversation_model(self._conversation_id, model, engine_name)
            except StorageError as exc:
                self.error.emit(str(exc))

    @Slot(object)
    def _on_model_activated(self, loaded: LoadedModel) -> None:
        """The open chat now uses this model: the conversation remembers it."""
        # A chat on a remote engine stays there: this model is for the chats that are not.
        if self._conversation_id is None or self._remote is not None:
            return
        try:
            self.store.set_conversation_model(
                self._conversation_id, model_reference(Path(loaded.path))
            )
        except StorageError as exc:
            self.error.emit(str(exc))

    @Slot(object)
    def _on_model_imported(self, model: LocalModel) -> None:
        self.select_model(str(model.path))

    def _use_remote_of_conversation(self, engine_name: str, model: str) -> None:
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

    @Slot()
    def _on_settings_applied(self) -> None:
        """A remote engine taken out of Settings (or "local only") is not used any more."""
        self.remote_engines.refresh()
        remote = self._remote
        if remote is None or self.remote_engines.engine(remote.engine or "") is not None:
            return
        if self._state != TurnState.IDLE:
            self.stop()  # not one more token from it
        self._set_remote(None)
        self.notice.emit(
            f"{remote.engine} is not used any more: this chat goes on with the model on this "
            "machine."
        )
        if self.models.loaded is not None:
            self._on_model_activated(self.models.loaded)

    # --- the open chat's own generation settings -------------------------------------------

    @property
    def chat_settings(self) -> ChatSettings:
        return self._chat_settings

    def _context_length(self) -> int:
        return self._chat_settings.context_length(self.settings)

    def _set_chat_settings(self, chosen: ChatSettings) -> None:
        self._chat_settings = chosen
        self.chat_settings_changed.emit(chosen)

    @Slot(object)
    def set_chat_settings(self, chosen: ChatSettings) -> None:
        """The open chat's settings from now on (saved with it); the next reply uses them. A
        new context length loads this chat's model again with it."""
        context_before = self._context_length()
        self._set_chat_settings(chosen)
        if self._conversation_id is not None:
            try:
                self.store.set_conversation_settings(self._conversation_id, chosen.to_json())
            except StorageError as exc:
                self.error.emit(str(exc))
        if self._context_length() != context_before and self._remote is None:
            self._context_timer.start()

    @Slot()
    def _apply_context_length(self) -> None:
        loaded = self.models.loaded
        if loaded is None or self._remote is not None:
            return
        if self._state != TurnState.IDLE:
            self.stop()  # the load is queued behind the reply
        self.models.use(str(loaded.path), self._context_length())

    # --- a conversation's own system prompt ------------------------------------------------

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

    @Slot(object, str)
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

    # --- turns -----------------------------------------------------------------------------

    def _choice(self) -> ModelChoice:
        """The model the next reply is asked of."""
        if self._remote is not None:
            return self._remote
        loaded = self.models.loaded
        assert loaded is not None
        return ModelChoice.local(loaded.path)

    def _check_ready(self) -> bool:
        if self._state != TurnState.IDLE:
            return False
        if self._remote is not None:
            return self._remote_usable(self._remote.engine or "")
        if self.models.is_loading:
            self.error.emit("The model is still loading; try again in a moment.")
            return False
        if self.models.loaded is None:
            self.error.emit("No model is loaded. Pick one above or add a GGUF file.")
            return False
        return True

    @Slot(str)
    def send(self, text: str) -> None:
        """Store the user's message, then generate a reply (or resend an edited message)."""
        if not text.strip():
            return
        if self._editing_id is not None:
            self.edit_and_resend(self._editing_id, text)
            return
        if not self._check_ready():
            return
        new = self._conversation_id is None
        try:
            # Committed before generation starts: the user's words survive any crash.
            conversation, message = chat.begin_turn(
                self.store,
                self._conversation_id,
                text,
                model=self._choice(),
                system_prompt=self._new_system_prompt if new else None,
                settings=self._chat_settings.to_json() if new else None,
            )
        except StorageError as exc:
            self.error.emit(str(exc))
            return
        if new:
            self._conversation_id = conversation.id
            self._new_system_prompt = None
            self.conversation_opened.emit(conversation.id, [])  # now it has an id to select
        self.message_added.emit(message)
        self.conversations_touched.emit()
        self._generate()

    @Slot()
    def regenerate(self) -> None:
        """Write the last reply again, as a new version of it: the earlier ones stay (‹ 2/3 ›)."""
        if self._conversation_id is None or not self._check_ready():
            return
        messages = self.store.messages(self._conversation_id)
        if not messages:
            return
        if messages[-1].role == "assistant":
            try:
                self.store.set_head(self._conversation_id, messages[-1].parent_id)
            except StorageError as exc:
                self.error.emit(str(exc))
                return
            self._reopen()
        self._generate()

    @Slot(int)
    def begin_edit(self, message_id: int) -> None:
        if self._conversation_id is None:
            return
        for message in self.store.messages(self._conversation_id):
            if message.id == message_id and message.role == "user":
                self._editing_id = message_id
                self.edit_started.emit(message_id, message.content)
                return

    @Slot()
    def cancel_edit(self) -> None:
        if self._editing_id is not None:
            self._editing_id = None
            self.edit_cancelled.emit()

    @Slot(int, str)
    def edit_and_resend(self, message_id: int, text: str) -> None:
        """Send an edited user message as a new branch from that turn, then generate a reply.
        The earlier branch stays, a version away (‹ 1/2 ›)."""
        if not text.strip() or self._conversation_id is None or not self._check_ready():
            return
        messages = self.store.messages(self._conversation_id)
        if message_id not in [m.id for m in messages]:
            self.error.emit("That message no longer exists.")
            self.cancel_edit()
            return
        try:
            self.store.add_version(message_id, text)
        except StorageError as exc:
            self.error.emit(str(exc))
            return
        self._editing_id = None
        self.edit_cancelled.emit()
        self._reopen()
        self._generate()

    def history(self, conversation_id: int) -> list[dict[str, str]]:
        """What the engine sees: the system prompt, then every turn."""
        return self.store.chat_history(conversation_id, self.settings.system_prompt)

    def _generate(self) -> None:
        assert self._conversation_id is not None
        conversation_id = self._conversation_id
        choice = self._choice()
        try:
            messages = self.history(conversation_id)
            reply = chat.Reply(self.store, conversation_id, choice)
        except StorageError as exc:
            self.error.emit(str(exc))
            return
        params = self._chat_settings.params(self.settings)
        self._reply = _Streaming(reply)
        engine = self.remote_engines.engine(choice.engine) if choice.engine else None
        # Asked first (it clears the Stop event): a Stop from anyone told of the reply below
        # must count. Its text arrives through the event loop, after this returns.
        self._link.generate(messages, params, (engine, choice.model) if engine else None)
        self._set_state(TurnState.GENERATING)
        self.reply_started.emit(reply.message)
        self._batch_timer.start()

    @Slot()
    def stop(self) -> None:
        """Stop the reply within a token: sets the event the engine polls, right now."""
        if self._state == TurnState.GENERATING:
            self._link.request_stop()
            self._set_state(TurnState.STOPPING)

    def _set_state(self, state: TurnState) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)

    def shutdown(self) -> None:
        """The app is closing: store what the reply streaming now has received."""
        self._batch_timer.stop()
        if self._reply is not None:
            # The worker's finish will not be delivered any more: store what we have.
            streaming, self._reply = self._reply, None
            streaming.reply.append("".join(streaming.pending))
            streaming.reply.finish(None, FinishReason.CANCELLED)

    # --- streaming (worker signals, delivered on the GUI thread) ----------------------------

    @Slot(str)
    def _on_text_generated(self, piece: str) -> None:
        if self._reply is not None:
            self._reply.pending.append(piece)

    @Slot(str)
    def _on_reasoning_generated(self, piece: str) -> None:
        if self._reply is not None:
            self._reply.pending_reasoning.append(piece)

    @Slot()
    def _flush(self) -> None:
        """Hand the views what arrived since the last tick; the reply checkpoints itself."""
        streaming = self._reply
        if streaming is not None and streaming.pending_reasoning:
            thought = "".join(streaming.pending_reasoning)
            streaming.pending_reasoning.clear()
            if streaming.conversation_id == self._conversation_id:
                self.reasoning_appended.emit(thought)
        if streaming is None or not streaming.pending:
            return
        batch = "".join(streaming.pending)
        streaming.pending.clear()
        streaming.reply.append(batch)
        if streaming.conversation_id == self._conversation_id:
            self.reply_text_appended.emit(batch)

    @Slot(object)
    def _on_generation_finished(self, completion: Completion) -> None:
        self._flush()
        self._batch_timer.stop()
        streaming, self._reply = self._reply, None
        self._set_state(TurnState.IDLE)
        if streaming is None:
            return
        if completion.finish_reason == FinishReason.ERROR and completion.error:
            self.error.emit(completion.error)
        message = streaming.reply.finish(completion)
        if completion.trimmed_messages:
            n = completion.trimmed_messages
            self.notice.emit(
                f"Oldest {n} message{'s' if n != 1 else ''} didn't fit in the context window "
                "and were left out."
            )
        self.stats_updated.emit(completion)
        if message is not None:
            self.reply_finished.emit(message)
        self.conversations_touched.emit()
