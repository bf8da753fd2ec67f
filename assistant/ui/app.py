"""The GUI's entry point and composition root: logging, excepthook, single instance, shutdown."""

from __future__ import annotations

import hashlib
import logging
import logging.handlers
import os
import signal
import sys
import traceback
from collections.abc import Callable
from types import TracebackType

from PySide6.QtCore import QLockFile, QObject, QTimer, Signal, Slot
from PySide6.QtGui import QIcon
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from assistant import APP_NAME, __version__, paths
from assistant.errors import AssistantError

log = logging.getLogger(__name__)


def server_name() -> str:
    """One name per data folder: two profiles (ASSISTANT_HOME) may run side by side."""
    key = str(paths.data_dir().resolve()).encode("utf-8")
    return f"assistant-{hashlib.sha256(key).hexdigest()[:16]}"


class SingleInstance(QObject):
    """The lock file says who owns the data folder; the local server lets a second launch
    ask the owner to show its window.

    Signals:
        activation_requested(): another launch asked this instance to come to the front.
    """

    activation_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._lock = QLockFile(str(paths.lock_path()))
        self._lock.setStaleLockTime(0)  # only a dead owner's lock is stale, never a slow one
        self._server: QLocalServer | None = None

    def acquire(self) -> bool:
        """Take the lock and listen; False when another live instance owns this data folder."""
        if not self._lock.tryLock(200):
            return False
        name = server_name()
        QLocalServer.removeServer(name)  # a crashed owner may have left its socket behind
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not self._server.listen(name):
            log.warning("Single-instance server could not listen: %s", self._server.errorString())
        self._server.newConnection.connect(self._on_connection)
        return True

    @staticmethod
    def notify_running(timeout_ms: int = 2000) -> bool:
        """Ask the running instance to raise its window."""
        socket = QLocalSocket()
        socket.connectToServer(server_name())
        if not socket.waitForConnected(timeout_ms):
            return False
        socket.write(b"raise\n")
        socket.flush()
        socket.waitForBytesWritten(timeout_ms)
        socket.disconnectFromServer()
        return True

    @Slot()
    def _on_connection(self) -> None:
        assert self._server is not None
        while (socket := self._server.nextPendingConnection()) is not None:
            socket.readyRead.connect(self._on_ready_read)
            socket.disconnected.connect(socket.deleteLater)

    @Slot()
    def _on_ready_read(self) -> None:
        socket = self.sender()
        if isinstance(socket, QLocalSocket) and b"raise" in bytes(socket.readAll().data()):
            self.activation_requested.emit()

    def release(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._lock.unlock()


def setup_logging() -> None:
    """Everything at INFO and above goes to a rotating file in the log folder."""
    from assistant import logs

    root = logging.getLogger()
    log_file = paths.log_dir() / "assistant.log"
    if any(getattr(h, "baseFilename", None) == str(log_file) for h in root.handlers):
        return
    handler = logs.file_handler("assistant")
    if handler is None:
        return
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)


class ExceptionDialogs:
    """sys.excepthook: log the bug, show it, keep running (a slot that raised is not fatal)."""

    def __init__(self, parent: QWidget | None = None):
        self.parent = parent
        self._open: list[QMessageBox] = []

    def __call__(
        self, kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        if issubclass(kind, KeyboardInterrupt):
            QApplication.quit()
            return
        if isinstance(value, AssistantError):
            log.warning("Unhandled expected error: %s", value)
            text, details = str(value), None
        else:
            log.error("Unhandled exception", exc_info=(kind, value, tb))
            text = (
                f"Something went wrong: {value}\n\nAssistant keeps running; details are in the log."
            )
            details = "".join(traceback.format_exception(kind, value, tb))
        if QApplication.instance() is None or len(self._open) >= 3:
            return
        box = QMessageBox(
            QMessageBox.Icon.Warning, APP_NAME, text, QMessageBox.StandardButton.Ok, self.parent
        )
        if details:
            box.setDetailedText(details)
        box.finished.connect(lambda _result, box=box: self._open.remove(box))
        self._open.append(box)
        box.open()  # not exec(): never a nested event loop inside an excepthook


def _quit_on_signals(app: QApplication) -> Callable[[], None]:
    """Ctrl+C in the terminal and SIGTERM close the app the normal way (stop, save, unlock).

    Returns a function that puts the previous handlers back.
    """

    def handler(_signum: int, _frame: object) -> None:
        QApplication.closeAllWindows()
        app.quit()

    previous = {}
    for name in ("SIGINT", "SIGTERM"):
        if hasattr(signal, name):
            number = getattr(signal, name)
            previous[number] = signal.signal(number, handler)
    # Python runs signal handlers only between bytecodes; Qt's C++ loop needs a nudge.
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(250)

    def restore() -> None:
        timer.stop()
        timer.deleteLater()
        for number, old in previous.items():
            signal.signal(number, old)

    return restore


def check_gui() -> None:
    """Start Qt offscreen and render Markdown in the chat view (the app's own widget)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from assistant.ui.chat_view import ChatView

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(["assistant-test"])
    from assistant.ui.workers import wait_for_tasks

    view = ChatView()
    view.setMarkdown("**ok**")
    app.processEvents()
    rendered = view.toPlainText().strip()
    # Its background work (a code lexer loading) ends before the process does, or it would
    # report to objects Python has already torn down.
    wait_for_tasks(5000)
    app.processEvents()
    if rendered != "ok":
        raise AssistantError("the chat view did not render Markdown")


def run(argv: list[str] | None = None) -> int:
    """Start the GUI; returns the process exit status."""
    argv = list(sys.argv if argv is None else argv)
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(argv)
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("assistant")
    app.setStyle("Fusion")  # follows the system's light/dark colour scheme
    setup_logging()

    instance = SingleInstance()
    if not instance.acquire():
        raised = SingleInstance.notify_running()
        print(
            f"{APP_NAME} is already running for {paths.data_dir()}"
            + ("; its window was brought to the front." if raised else "."),
            file=sys.stderr,
        )
        return 0

    from assistant.conversations.storage import Store
    from assistant.settings import Settings
    from assistant.ui.controllers import Controllers
    from assistant.ui.main_window import MainWindow, icon_path

    if (icon := icon_path()) is not None:
        app.setWindowIcon(QIcon(str(icon)))
    try:
        store = Store()
    except AssistantError as exc:
        log.error("Cannot open the database: %s", exc)
        QMessageBox.critical(None, APP_NAME, str(exc))
        instance.release()
        return 1
    controllers = Controllers(store, Settings.load())
    window = MainWindow(controllers)
    instance.activation_requested.connect(window.bring_to_front)
    previous_hook = sys.excepthook
    sys.excepthook = ExceptionDialogs(window)
    log.info("%s %s started (data in %s)", APP_NAME, __version__, paths.data_dir())
    window.show()
    controllers.start()
    restore_signals = _quit_on_signals(app)
    try:
        status = app.exec()
    finally:
        stopped = controllers.shutdown()  # a no-op if the window's close already did it
        restore_signals()
        sys.excepthook = previous_hook
        instance.release()
    if not stopped:
        # A model load cannot be interrupted, and destroying a running QThread aborts the
        # process: the database is closed and the lock released, so leave at once.
        log.warning("Exiting while the inference thread is still busy")
        logging.shutdown()
        os._exit(status)
    log.info("%s stopped", APP_NAME)
    return status
