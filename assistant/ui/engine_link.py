"""The two threads that talk to engines, and the Stop event they share.

One QThread runs the EngineWorker (the engine process on this machine: start, load, generate,
release), another the RemoteWorker (replies from remote engines), so that a model loading here
never holds up a chat with a remote engine, nor a slow remote server the local engine. Requests
cross to them as queued signals and run in the order they were made; the controllers connect to
the workers' own signals, delivered on the GUI thread.
"""

from __future__ import annotations

import logging
import threading

from PySide6.QtCore import QObject, Qt, QThread, Signal

from assistant.clients.openai_client import CONNECT_TIMEOUT_S
from assistant.endpoints import RemoteEngine
from assistant.records import GenerationParams
from assistant.settings import Settings
from assistant.ui.engine_worker import EngineWorker
from assistant.ui.remote_worker import RemoteWorker

log = logging.getLogger(__name__)


def engine_options(settings: Settings) -> tuple[str, int, str | None, int]:
    """How the engine process runs: where it listens (the Local API's port and key when it is
    on, else a random port and a key of this run alone) and its CPU threads."""
    if settings.local_api:
        key = settings.api_key or settings.ensure_api_key()
        return "127.0.0.1", int(settings.api_port), key, int(settings.threads)
    return "127.0.0.1", 0, None, int(settings.threads)


class EngineLink(QObject):
    """Owns the engine and remote-engine threads and their workers; lives on the GUI thread."""

    _start_requested = Signal()
    _load_requested = Signal(str, int, int)
    _release_requested = Signal(str, str, int, int)
    _reconfigure_requested = Signal(str, int, str, int, int, int)
    _close_requested = Signal()
    _generate_requested = Signal(list, GenerationParams, list, object)
    _remote_generate_requested = Signal(RemoteEngine, str, list, GenerationParams)

    def __init__(self, settings: Settings, parent: QObject | None = None):
        super().__init__(parent)
        # Set directly by request_stop() on the GUI thread; the engines check it between tokens
        # (and in the local engine's abort callback). A queued "stop" would come after the reply.
        self._stop = threading.Event()
        host, port, key, threads = engine_options(settings)

        self._thread = QThread(self)
        self._thread.setObjectName("engine-client")
        self.engine = EngineWorker(self._stop, host=host, port=port, api_key=key, threads=threads)
        self.engine.moveToThread(self._thread)
        self._start_requested.connect(self.engine.start)
        self._load_requested.connect(self.engine.load)
        self._release_requested.connect(self.engine.release)
        self._reconfigure_requested.connect(self.engine.reconfigure)
        self._close_requested.connect(self.engine.close)
        self._generate_requested.connect(self.engine.generate)
        # Direct: started is emitted on the new thread, before its event loop runs.
        self._thread.started.connect(self.engine.name_thread, Qt.ConnectionType.DirectConnection)
        # Direct: shutdown() blocks the GUI thread in a bounded wait(), so a queued quit() would
        # only arrive after the wait. QThread.quit() is thread-safe.
        self.engine.closed.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)

        self._remote_thread = QThread(self)
        self._remote_thread.setObjectName("remote-engine")
        self.remote = RemoteWorker(self._stop)
        self.remote.moveToThread(self._remote_thread)
        self._remote_thread.started.connect(
            self.remote.name_thread, Qt.ConnectionType.DirectConnection
        )
        self._remote_generate_requested.connect(self.remote.generate)

    def start(self) -> None:
        """Start both threads and the engine process (once everyone is connected to them)."""
        self._thread.start()
        self._remote_thread.start()
        self._start_requested.emit()

    @property
    def engine_thread(self) -> QThread:
        """The thread that talks to the engine process (QObject.thread() is the GUI's)."""
        return self._thread

    @property
    def api_key(self) -> str:
        """The key of the running engine (the app's own, or the Local API's)."""
        return self.engine.supervisor.api_key

    # --- requests, run in order on the engine thread ----------------------------------------

    def load(self, path: str, settings: Settings, n_ctx: int | None = None) -> None:
        """Load with ``n_ctx`` (a chat's own context length), else the one in Settings."""
        self._load_requested.emit(path, int(n_ctx or settings.n_ctx), int(settings.n_gpu_layers))

    def release(self, path: str, fallback: str, settings: Settings) -> None:
        self._release_requested.emit(
            path, fallback, int(settings.n_ctx), int(settings.n_gpu_layers)
        )

    def reconfigure(self, settings: Settings) -> None:
        host, port, key, threads = engine_options(settings)
        # A random key stays the same across a restart only when the Local API sets one.
        self._reconfigure_requested.emit(
            host, port, key or "", threads, int(settings.n_ctx), int(settings.n_gpu_layers)
        )

    def generate(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        remote: tuple[RemoteEngine, str] | None = None,
        documents: tuple[str, ...] = (),
        tools: dict | None = None,
    ) -> None:
        """Ask the local engine, or ``remote`` (an engine and its model), for a reply; with
        ``documents``, the local engine's reply is given their best passages; with ``tools``
        (the MCP servers, the always-allowed tools, "Local only"), it may call tools."""
        self._stop.clear()  # here, not in a worker: a Stop pressed right after Send must count
        if remote is not None:
            engine, model = remote
            self._remote_generate_requested.emit(engine, model, messages, params)
        else:
            self._generate_requested.emit(messages, params, list(documents), tools)

    def request_stop(self) -> None:
        """Stop the reply within a token: the engines poll this event, set right now."""
        self._stop.set()

    def shutdown(self, timeout_ms: int) -> bool:
        """Stop any reply, close the engine and end both threads, each wait bounded."""
        self._stop.set()
        # Directly, not queued: a load in progress would hold a queued request back. The
        # engine exits at once when its stdin closes; the worker's request then fails.
        self.engine.supervisor.stop()
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
        return finished
