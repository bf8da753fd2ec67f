"""The GUI's side of the engine: one QObject on its own QThread that starts the engine process
(through the Supervisor), and loads, generates and releases models over the OpenAI protocol.

The GUI process runs no llama.cpp at all: if the engine dies natively, this worker reports the
reply so far as ended with an error, waits for the supervisor's restart, loads the model again
and says what happened, and the app carries on.

Slots are invoked through queued signals from the EngineLink (ui/engine_link.py), so requests
run in the order they were made (a model swap asked for during a reply runs once that reply has
stopped).
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from assistant.clients.engine_client import EngineClient
from assistant.clients.supervisor import Crash, Supervisor
from assistant.errors import AssistantError, EngineUnavailable
from assistant.records import Completion, GenerationParams, LoadedModel
from assistant.tools.mcp_servers import McpTools
from assistant.ui.workers import resolved_path

log = logging.getLogger(__name__)

# Load attempts for one request: the first, one plain retry, then one per fallback rung.
MAX_LOAD_ATTEMPTS = 5


class EngineWorker(QObject):
    """Owns the Supervisor (so the engine process); lives on the engine QThread.

    Signals:
        engine_started(str): the base URL of the engine now serving (after start or restart).
        load_progress(float): 0..1 while llama.cpp reads the weights.
        model_loaded(object): a LoadedModel, now the active model.
        load_failed(str, str, object): path, the sentence to show, and the LoadedModel that is
            active now (the previous one when the file was refused; None after a crash).
        engine_failed(str): the engine could not be started; the sentence to show.
        model_released(str, object, str): the model at this path is closed (its file may be
            deleted); the LoadedModel now active (None when none) and a problem to show.
        text_generated(str): one piece of the reply (the session batches them).
        reasoning_generated(str): one piece of a reasoning model's thinking.
        tool_approval_requested(dict): a tool call to approve ("tool", "arguments", "server");
            the worker waits for answer_tool() (or Stop).
        tool_calls_updated(list): the reply's tool calls so far (chat/tool_turn.py entries).
        tools_noted(str): a tool server that is not available, in one line.
        sources_found(list): the document passages the reply is given (chat/sources.py
            records), before its first text.
        generation_finished(object): the Completion, also for cancelled and failed replies.
        engine_crashed(str): the engine died and was restarted; the sentence for the user.
        reloading(str): after a restart, the model at this path is being loaded again; one
            model_loaded or model_released follows.
        closed(): the engine is stopped; the thread can quit.
    """

    engine_started = Signal(str)
    load_progress = Signal(float)
    model_loaded = Signal(LoadedModel)
    load_failed = Signal(str, str, LoadedModel)  # the LoadedModel may be None
    engine_failed = Signal(str)
    model_released = Signal(str, LoadedModel, str)  # the LoadedModel may be None
    text_generated = Signal(str)
    reasoning_generated = Signal(str)
    sources_found = Signal(list)
    tool_approval_requested = Signal(dict)
    tool_calls_updated = Signal(list)
    tools_noted = Signal(str)
    generation_finished = Signal(Completion)
    engine_crashed = Signal(str)
    reloading = Signal(str)
    closed = Signal()

    # From the supervisor's watch thread; queued onto this worker's thread.
    _died = Signal(Crash)

    def __init__(
        self, stop: threading.Event, *, host: str, port: int, api_key: str | None, threads: int
    ):
        super().__init__()
        self._stop = stop
        self._answers: queue.Queue[str] = queue.Queue()  # tool approvals, from the GUI thread
        self._mcp: McpTools | None = None
        self._mcp_servers: dict = {}
        self._handled_crashes = 0
        self._supervisor = self._new_supervisor(host, port, api_key, threads)
        self._died.connect(self._on_died)
        self._loaded: LoadedModel | None = None
        self._load_args: tuple[int, int] = (4096, -1)

    @property
    def supervisor(self) -> Supervisor:
        return self._supervisor

    @Slot()
    def name_thread(self) -> None:
        """Log records from this thread say "engine-client" instead of Python's "Dummy-N"."""
        threading.current_thread().name = "engine-client"

    def _client(self) -> EngineClient:
        return self._supervisor.client()

    @Slot()
    def start(self) -> None:
        try:
            client = self._supervisor.start()
        except AssistantError as exc:
            if not self._supervisor.fatal or self._supervisor.port == 0:
                self.engine_failed.emit(str(exc))
                return
            # The Local API's port is taken (another server?): chat on a private port rather
            # than not at all, and say so.
            self.engine_failed.emit(
                f"{exc} The Local API is unavailable until you choose another port in "
                "Settings; the app itself works as usual."
            )
            self._supervisor = self._new_supervisor("127.0.0.1", 0, None, self._supervisor.threads)
            try:
                client = self._supervisor.start()
            except AssistantError as again:
                self.engine_failed.emit(str(again))
                return
        self.engine_started.emit(client.base_url)

    def _new_supervisor(
        self, host: str, port: int, api_key: str | None, threads: int
    ) -> Supervisor:
        self._handled_crashes = 0
        # The app alone needs one slot; serving other apps too, as many as Settings say (0:
        # as many as memory allows), so that they do not queue behind each other.
        return Supervisor(
            host=host,
            port=port,
            api_key=api_key,
            threads=threads,
            slots=None if api_key else 1,
            on_crash=self._died.emit,
        )

    # -- load ---------------------------------------------------------------------------------

    @Slot(str, int, int)
    def load(self, path: str, n_ctx: int, n_gpu_layers: int) -> None:
        try:
            loaded = self._load(Path(path), n_ctx, n_gpu_layers)
        except AssistantError as exc:
            log.warning("Could not load %s: %s", path, exc)
            self.load_failed.emit(path, str(exc), self._loaded)
            return
        self.model_loaded.emit(loaded)

    def _load(self, path: Path, n_ctx: int, n_gpu_layers: int) -> LoadedModel:
        """Load through the engine, riding out crashes: the supervisor restarts the engine and,
        on a repeated crash, steps the configuration down; each attempt is told to the user."""
        for attempt in range(MAX_LOAD_ATTEMPTS):
            try:
                loaded = self._client().load(
                    path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, progress=self._progress
                )
            except EngineUnavailable:
                crash = self._after_crash()
                if crash is None or self._supervisor.gave_up or attempt == MAX_LOAD_ATTEMPTS - 1:
                    raise
                if crash.exhausted:
                    raise EngineUnavailable(
                        f"{crash.sentence()} {path.name} cannot be loaded on this machine."
                    ) from None
                self.engine_crashed.emit(crash.sentence())
                continue
            self._loaded = loaded
            self._load_args = (n_ctx, n_gpu_layers)
            return loaded
        raise EngineUnavailable(f"{path.name} could not be loaded.")

    def _after_crash(self) -> Crash | None:
        """After a broken request: the crash (None if the engine still runs), once restarted."""
        crash = self._supervisor.wait_exit(5.0)
        if crash is None:
            return None
        self._handled_crashes = self._supervisor.crash_count
        self._loaded = None
        try:
            client = self._supervisor.wait_ready()
        except EngineUnavailable:
            return crash
        self.engine_started.emit(client.base_url)
        return crash

    def _progress(self, fraction: float) -> None:
        self.load_progress.emit(float(fraction))

    @Slot(object)
    def _on_died(self, crash: Crash) -> None:
        """A death noticed while no request was running (killed while idle, say)."""
        if crash is not self._supervisor.last_crash:
            return  # from a supervisor replaced since (Settings restarted the engine)
        if self._supervisor.crash_count <= self._handled_crashes:
            return  # the request that saw it has dealt with it
        self._handled_crashes = self._supervisor.crash_count
        self._supervisor.wait_exit(0)  # consumed here
        previous, self._loaded = self._loaded, None
        self.engine_crashed.emit(crash.sentence())
        self._reload(previous)

    def _can_reload(self, previous: LoadedModel | None) -> bool:
        return previous is not None and not self._supervisor.gave_up and not self._supervisor.fatal

    def _reload(self, previous: LoadedModel | None, *, announced: bool = False) -> None:
        """After a restart: load the model that was active, so the next message just works."""
        if previous is None or not self._can_reload(previous):
            return
        n_ctx, n_gpu_layers = self._load_args
        if not announced:
            self.reloading.emit(str(previous.path))
        try:
            loaded = self._load(previous.path, n_ctx, n_gpu_layers)
        except AssistantError as exc:
            self.load_failed.emit(
                str(previous.path),
                f"{previous.name} could not be loaded again after the engine restarted: {exc}",
                None,
            )
            return
        self.model_loaded.emit(loaded)

    # -- release ------------------------------------------------------------------------------

    @Slot(str, str, int, int)
    def release(self, path: str, fallback: str, n_ctx: int, n_gpu_layers: int) -> None:
        """Unload the model at ``path`` if it is loaded, then load ``fallback`` (if any).

        Unloaded first, so the file is no longer open when it is deleted, whatever the fallback
        does; the old model is never restored.
        """
        current = self._loaded
        if current is None or resolved_path(current.path) != resolved_path(path):
            self.model_released.emit(path, current, "")  # not in use (any more): nothing to do
            return
        try:
            self._client().unload()
        except AssistantError as exc:
            log.warning("Unloading %s failed: %s", path, exc)
        self._loaded = None
        if not fallback:
            self.model_released.emit(path, None, "")
            return
        try:
            loaded = self._load(Path(fallback), n_ctx, n_gpu_layers)
        except AssistantError as exc:
            self.model_released.emit(path, None, str(exc))
            return
        self.model_released.emit(path, loaded, "")

    # -- generate -----------------------------------------------------------------------------

    @Slot(object, object, list, object)
    def generate(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        documents: list[str],
        tools: dict | None = None,
    ) -> None:
        model = self._loaded
        model_file = model.name if model is not None else ""
        crashed_with: LoadedModel | None = None
        try:
            if documents:
                messages = self._with_documents(messages, documents, model)
            if tools is not None and tools.get("servers"):
                completion = self._reply_with_tools(messages, params, model, tools)
            else:
                completion = self._client().chat(
                    messages,
                    params,
                    model=str(model.path) if model is not None else None,
                    on_text=self._emit_text,
                    on_reasoning=self.reasoning_generated.emit,
                    stop=self._stop,
                )
        except EngineUnavailable as exc:
            crash = self._after_crash()
            sentence = crash.sentence() if crash is not None else str(exc)
            completion = Completion.failed(sentence, exc.partial_text, model_file)
            crashed_with = model if crash is not None else None
        except AssistantError as exc:
            completion = Completion.failed(str(exc), "", model_file)
        except Exception as exc:
            log.exception("Unexpected error while generating")
            completion = Completion.failed(f"Generation failed: {exc}", "", model_file)
        # The reload is announced before the failed reply ends, so that nobody who sees the
        # reply end takes the crashed engine's model for the one loaded.
        reload = crashed_with is not None and self._can_reload(crashed_with)
        if reload:
            assert crashed_with is not None
            self.reloading.emit(str(crashed_with.path))
        self.generation_finished.emit(completion)
        if reload:
            self._reload(crashed_with, announced=True)

    def _with_documents(
        self, messages: list[dict[str, str]], documents: list[str], model: LoadedModel | None
    ) -> list[dict[str, str]]:
        """The messages with the best passages of ``documents`` for the last question; a
        collection that is gone, or a search that fails, leaves them as they were (said)."""
        from assistant.chat import sources

        question = messages[-1]["content"] if messages else ""
        client = self._client()
        try:
            hits = sources.find_passages(
                lambda texts, m: client.embed(texts, m, interactive=True),
                documents,
                question,
                n_ctx=model.n_ctx if model is not None else 4096,
            )
        except AssistantError as exc:
            self.sources_found.emit([{"error": f"Your documents were not searched: {exc}"}])
            return messages
        self.sources_found.emit(sources.records(hits))
        return sources.with_passages(messages, hits)

    def _reply_with_tools(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        model: LoadedModel | None,
        tools: dict,
    ) -> Completion:
        """A reply that may call the MCP servers' tools, each call approved in the window."""
        from assistant.chat import tool_turn

        mcp = self._servers(tools)
        completion = tool_turn.reply(
            self._client(), mcp, list(messages), params,
            str(model.path) if model is not None else "",
            approve=self._approve, allowed=set(tools.get("allowed", ())),
            on_calls=self.tool_calls_updated.emit, on_text=self._emit_text,
            on_reasoning=self.reasoning_generated.emit, stop=self._stop,
        )  # fmt: skip
        return completion

    def _servers(self, tools: dict) -> McpTools:
        """The MCP servers, started once and kept while their configuration stays the same."""
        from assistant.tools.mcp_servers import ConfigError, parse_config

        servers = tools["servers"]
        if self._mcp is None or servers != self._mcp_servers:
            if self._mcp is not None:
                self._mcp.close()
            try:
                configs = parse_config({"mcpServers": servers})
            except ConfigError as exc:
                raise AssistantError(f"The tool servers in Settings: {exc}") from None
            self._mcp = McpTools(configs, local_only=bool(tools.get("local_only"))).start()
            self._mcp_servers = servers
            for problem in self._mcp.problems:
                self.tools_noted.emit(f"Tool server {problem} The reply goes on without it.")
        return self._mcp

    def _approve(self, tool: object, arguments: str) -> str:
        """Ask the window (tool_approval_requested) and wait for answer_tool(), or Stop."""
        from assistant.chat import tool_turn

        while not self._answers.empty():  # an answer to a question no longer asked
            self._answers.get_nowait()
        self.tool_approval_requested.emit(
            {"tool": getattr(tool, "key", ""), "server": getattr(tool, "server", ""),
             "description": getattr(tool, "description", ""), "arguments": arguments}
        )  # fmt: skip
        while not self._stop.is_set():
            try:
                return self._answers.get(timeout=0.1)
            except queue.Empty:
                continue
        return tool_turn.DENY

    def answer_tool(self, answer: str) -> None:
        """The person's answer to tool_approval_requested (called from the GUI thread)."""
        self._answers.put(answer)

    def _emit_text(self, piece: str) -> None:
        if piece:
            self.text_generated.emit(piece)

    # -- the Local API --------------------------------------------------------------------------

    @Slot(str, int, str, int, int, int)
    def reconfigure(
        self, host: str, port: int, api_key: str, threads: int, n_ctx: int, n_gpu_layers: int
    ) -> None:
        """Serve on another address, key or thread count (Settings): restart, reload (with
        the context size and GPU layers of the same Settings change)."""
        previous = self._loaded
        self._supervisor.stop()
        self._supervisor = self._new_supervisor(host, port, api_key or None, threads)
        self._loaded = None
        self._load_args = (n_ctx, n_gpu_layers)
        self.start()
        self._reload(previous)

    @Slot()
    def close(self) -> None:
        if self._mcp is not None:
            self._mcp.close()
            self._mcp = None
        try:
            self._supervisor.stop()
        except Exception:
            log.exception("Error stopping the engine")
        self.closed.emit()
