"""The open chat: which conversation it is, its model (here or on a remote engine), its own
settings and system prompt, and its turns (send, stop, regenerate, edit), each driven through the
one turn lifecycle of assistant/chat/turn.py.

It owns three helpers: ChatModelChoice (ui/model_choice.py), which model the chat asks and
whether it can now; ChatOptions (ui/chat_options.py), its own settings and system prompt; and
ReplyStream (ui/reply_stream.py), the streaming reply handed to the views in batches. Their
signals reach the views through the session's own.
"""

from __future__ import annotations

import dataclasses
import logging

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from assistant.chat import turn
from assistant.chat.settings import ChatSettings
from assistant.chat.turn import ModelChoice, TurnState
from assistant.conversations.storage import Message, Store
from assistant.errors import StorageError
from assistant.models.library import LocalModel
from assistant.records import Completion, FinishReason, LoadedModel
from assistant.settings import Settings
from assistant.ui.chat_options import ChatOptions
from assistant.ui.engine_link import EngineLink
from assistant.ui.model_choice import ChatModelChoice
from assistant.ui.model_manager import ModelManager
from assistant.ui.remote_engines import RemoteEngines
from assistant.ui.reply_stream import ReplyStream

log = logging.getLogger(__name__)

CONTEXT_SETTLE_MS = 700


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
        self._state = TurnState.IDLE
        self._editing_id: int | None = None
        self._options = ChatOptions(store, settings, self)
        self._options.chat_settings_changed.connect(self.chat_settings_changed)
        self._options.error.connect(self.error)
        self._model = ChatModelChoice(store, settings, models, link, remote_engines, self)
        self._model.remote_changed.connect(self.remote_changed)
        self._model.stop_requested.connect(self.stop)
        self._model.notice.connect(self.notice)
        self._model.error.connect(self.error)
        # A new context length reloads the model once the value has settled (a spin box sends
        # every step on its way there).
        self._context_timer = QTimer(self)
        self._context_timer.setSingleShot(True)
        self._context_timer.setInterval(CONTEXT_SETTLE_MS)
        self._context_timer.timeout.connect(self._apply_context_length)
        self._stream = ReplyStream(link, self)
        self._stream.text_appended.connect(self._on_text_appended)
        self._stream.reasoning_appended.connect(self._on_reasoning_appended)
        self._stream.finished.connect(self._on_reply_ended)
        self._stream.sources_noted.connect(self.notice)
        link.remote.retrying.connect(self.notice)
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
        return self._model.remote

    @property
    def editing(self) -> int | None:
        return self._editing_id

    def can_send(self) -> bool:
        return self._state == TurnState.IDLE and self._model.can_ask()

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
        self._options.opened(ChatSettings())
        self.conversation_opened.emit(None, [])

    @Slot(int)
    def open_conversation(self, conversation_id: int) -> None:
        self.cancel_edit()
        self._stream.flush()  # text streamed so far goes to the conversation still on screen
        try:
            conversation = self.store.conversation(conversation_id)
            messages = self.store.messages(conversation_id)
        except StorageError as exc:
            self.error.emit(str(exc))
            return
        self._conversation_id = conversation_id
        self._options.opened(ChatSettings.from_json(conversation.settings))
        reply = self._stream.current
        if reply is not None and reply.conversation_id == conversation_id:
            # Still streaming: show everything received, not the last checkpoint.
            messages = [
                dataclasses.replace(m, content=reply.text) if m.id == reply.message_id else m
                for m in messages
            ]
        self.conversation_opened.emit(conversation_id, messages)
        self._model.open(conversation, self._context_length())

    @Slot(int, int)
    def open_message(self, conversation_id: int, message_id: int) -> None:
        """Open a conversation on the branch that holds this message (a search hit)."""
        streaming = self._stream.current
        if streaming is not None and streaming.conversation_id == conversation_id:
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
        streaming = self._stream.current
        if streaming is not None and conversation_id in (None, streaming.conversation_id):
            self.stop()
        if conversation_id is None or conversation_id == self._conversation_id:
            self.new_conversation()

    # --- the open chat's model (ui/model_choice.py) ---------------------------------------

    @Slot(str)
    def select_model(self, path: str) -> None:
        """Use this model of this machine for the open chat (and as the default from now on)."""
        self._model.use_local(path, self._context_length())

    @Slot(str, str)
    def select_remote(self, engine_name: str, model: str) -> None:
        """Use this model of a remote engine for the open chat."""
        self._model.use_remote(self._conversation_id, engine_name, model)

    @Slot(object)
    def _on_model_activated(self, loaded: LoadedModel) -> None:
        """The open chat now uses this model: the conversation remembers it."""
        self._model.remember_local(self._conversation_id, loaded)

    @Slot(object)
    def _on_model_imported(self, model: LocalModel) -> None:
        self.select_model(str(model.path))

    @Slot()
    def _on_settings_applied(self) -> None:
        """A remote engine taken out of Settings (or "local only") is not used any more."""
        if self._model.leave_gone_remote() and self.models.loaded is not None:
            self._on_model_activated(self.models.loaded)

    # --- the open chat's own settings and system prompt (ui/chat_options.py) --------------

    @property
    def chat_settings(self) -> ChatSettings:
        return self._options.chat_settings

    def _context_length(self) -> int:
        return self._options.context_length()

    @Slot(object)
    def set_chat_settings(self, chosen: ChatSettings) -> None:
        """The open chat's settings from now on (saved with it); the next reply uses them. A
        new context length loads this chat's model again with it."""
        context_changed = self._options.set_chat_settings(self._conversation_id, chosen)
        if context_changed and self._model.remote is None:
            self._context_timer.start()

    @Slot(bool)
    def set_chat_tools(self, on: bool) -> None:
        """Whether this chat offers the tools of the MCP servers in Settings."""
        self.set_chat_settings(dataclasses.replace(self.chat_settings, tools=bool(on)))

    def answer_tool(self, tool: str, answer: str) -> None:
        """The person's answer to a tool call the reply asked about ("always" is kept)."""
        from assistant.chat import tool_turn

        if answer == tool_turn.ALWAYS and tool not in self.settings.allowed_tools:
            self.settings.allowed_tools = [*self.settings.allowed_tools, tool]
            try:
                self.settings.save()
            except OSError as exc:
                self.error.emit(f"Could not save Settings: {exc}")
        self._link.engine.answer_tool(answer)

    @Slot(object)
    def set_chat_documents(self, names: tuple[str, ...]) -> None:
        """The collections of the person's documents this chat answers from now."""
        self.set_chat_settings(dataclasses.replace(self.chat_settings, documents=tuple(names)))

    @Slot()
    def _apply_context_length(self) -> None:
        self._model.reload(self._context_length())

    def system_prompt_of(self, conversation_id: int | None) -> str:
        """A conversation's own system prompt ("" when it uses the default from Settings).

        None stands for the new chat that has not been saved yet.
        """
        return self._options.system_prompt_of(conversation_id)

    @Slot(object, str)
    def set_system_prompt(self, conversation_id: int | None, prompt: str) -> None:
        """Give a conversation its own system prompt; empty means use the default again."""
        self._options.set_system_prompt(conversation_id, prompt)

    # --- turns -----------------------------------------------------------------------------

    def _check_ready(self) -> bool:
        return self._state == TurnState.IDLE and self._model.check_ready()

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
            conversation, message = turn.begin_turn(
                self.store,
                self._conversation_id,
                text,
                model=self._model.choice(),
                system_prompt=self._options.new_system_prompt if new else None,
                settings=self._options.chat_settings.to_json() if new else None,
            )
        except StorageError as exc:
            self.error.emit(str(exc))
            return
        if new:
            self._conversation_id = conversation.id
            self._options.new_chat_saved()
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
        choice = self._model.choice()
        try:
            messages = self.history(conversation_id)
            reply = turn.Reply(self.store, conversation_id, choice)
        except StorageError as exc:
            self.error.emit(str(exc))
            return
        params = self._options.chat_settings.params(self.settings)
        self._stream.start(reply)
        engine = self.remote_engines.engine(choice.engine) if choice.engine else None
        # Asked first (it clears the Stop event): a Stop from anyone told of the reply below
        # must count. Its text arrives through the event loop, after this returns.
        documents = self._options.chat_settings.documents
        tools = None
        if self._options.chat_settings.tools and self.settings.mcp_servers:
            tools = {"servers": dict(self.settings.mcp_servers),
                     "allowed": list(self.settings.allowed_tools),
                     "local_only": self.settings.local_only}  # fmt: skip
        if (documents or tools) and engine is not None:
            self.notice.emit(
                "This chat's documents and tools are used only with this machine's engine; "
                "the remote engine answers without them."
            )
        self._link.generate(
            messages, params, (engine, choice.model) if engine else None,
            documents=documents, tools=tools,
        )  # fmt: skip
        self._set_state(TurnState.GENERATING)
        self.reply_started.emit(reply.message)

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
        self._stream.shutdown()

    # --- the streaming reply (ui/reply_stream.py), handed on to the views ------------------

    @Slot(int, str)
    def _on_text_appended(self, conversation_id: int, batch: str) -> None:
        if conversation_id == self._conversation_id:
            self.reply_text_appended.emit(batch)

    @Slot(int, str)
    def _on_reasoning_appended(self, conversation_id: int, thought: str) -> None:
        if conversation_id == self._conversation_id:
            self.reasoning_appended.emit(thought)

    @Slot(object, object)
    def _on_reply_ended(self, completion: Completion, reply: turn.Reply | None) -> None:
        """The reply's last text has been handed on: store it, and say how it went."""
        self._set_state(TurnState.IDLE)
        if reply is None:
            return
        if completion.finish_reason == FinishReason.ERROR and completion.error:
            self.error.emit(completion.error)
        message = reply.finish(completion)
        if completion.is_empty:
            note = completion.empty_note
            self.notice.emit(f"{note[0].upper()}{note[1:]}. Regenerate (Ctrl+R) to ask again.")
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
