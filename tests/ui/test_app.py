"""The application shell: run(), one instance per data folder, excepthook, shortcuts, themes."""

from __future__ import annotations

import configparser
import os
import signal
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QPalette
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QComboBox,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QTextBrowser,
)

from assistant import paths
from assistant.ui.app import ExceptionDialogs, SingleInstance, run
from assistant.ui.main_window import MainWindow, icon_path
from assistant.ui.settings_dialog import SettingsDialog
from tests.ui.conftest import fast_settings
from tests.ui.helpers import dark_palette, send

REPO = Path(__file__).resolve().parents[2]


def test_run_starts_loads_the_default_model_and_quits_cleanly(qtbot, tiny_models) -> None:
    fast_settings(tiny_models["a"]).save()
    seen: list[MainWindow] = []

    def close_when_ready() -> None:
        windows = [
            w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()
        ]
        if windows and windows[0].controllers.models.loaded is not None:
            seen.append(windows[0])
            windows[0].close()
        else:
            QTimer.singleShot(50, close_when_ready)

    QTimer.singleShot(50, close_when_ready)
    hook = sys.excepthook
    sigint = signal.getsignal(signal.SIGINT)
    assert run(["assistant"]) == 0
    assert seen and not seen[0].controllers.engine_thread.isRunning()
    assert seen[0].windowIcon().isNull() is False
    assert sys.excepthook is hook  # restored
    assert signal.getsignal(signal.SIGINT) is sigint
    assert (paths.log_dir() / "assistant.log").read_text(encoding="utf-8")
    # The lock was released: another instance could start now.
    again = SingleInstance()
    assert again.acquire()
    again.release()
    seen[0].deleteLater()


def test_second_launch_raises_the_first_and_exits_0(qtbot, assistant_home: Path) -> None:
    first = SingleInstance()
    assert first.acquire()
    try:
        env = {**os.environ, "ASSISTANT_HOME": str(assistant_home), "QT_QPA_PLATFORM": "offscreen"}
        with qtbot.waitSignal(first.activation_requested, timeout=30_000):
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys; from assistant.ui.app import run; sys.exit(run(['assistant']))",
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            # Keep the event loop turning while the child connects.
            qtbot.waitUntil(lambda: proc.poll() is not None, timeout=30_000)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "already running" in err
        # It never opened the database (no window, no Store).
        assert not (assistant_home / "assistant.db").exists()
    finally:
        first.release()


def test_exception_hook_logs_shows_and_keeps_running(
    qtbot, make_window, tiny_models, caplog
) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    hook = ExceptionDialogs(window)
    try:
        raise RuntimeError("boom in a slot")
    except RuntimeError as exc:
        hook(type(exc), exc, exc.__traceback__)
    boxes = [
        w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()
    ]
    assert any("boom in a slot" in b.text() for b in boxes)
    assert "boom in a slot" in caplog.text
    for box in boxes:
        box.close()
    assert send(qtbot, window, "still alive").content


def test_shortcuts_and_accessible_names(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))

    def keys(action) -> set[str]:
        return {s.toString() for s in action.shortcuts()}

    assert keys(window.new_action) == {"Ctrl+N"}
    assert keys(window.search_action) == {"Ctrl+F", "Ctrl+K"}
    assert keys(window.stop_action) == {"Esc"}
    assert keys(window.regenerate_action) == {"Ctrl+R"}
    assert window.search_action in window.actions()  # work without opening a menu
    for kind in (QAbstractButton, QLineEdit, QPlainTextEdit, QComboBox, QListWidget, QTextBrowser):
        for widget in window.findChildren(kind):
            if widget.isVisibleTo(window):
                assert widget.accessibleName(), widget
    # Shift+Enter makes a new line; Enter sends.
    box = window.composer.message_box
    box.setFocus()
    qtbot.keyClicks(box, "line one")
    qtbot.keyClick(box, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(box, "line two")
    assert box.toPlainText() == "line one\nline two"
    with qtbot.waitSignal(window.session.reply_finished, timeout=60_000):
        qtbot.keyClick(box, Qt.Key.Key_Return)
    assert box.toPlainText() == ""
    assert (
        window.controllers.store.messages(window.session.conversation_id)[0].content
        == "line one\nline two"
    )


def test_follows_a_dark_palette(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    send(qtbot, window, "colours")
    app = QApplication.instance()
    original = app.palette()
    dark = dark_palette()
    try:
        app.setPalette(dark)
        qtbot.waitUntil(
            lambda: window.chat_view.palette().color(QPalette.ColorRole.Base).lightness() < 128
        )
        from pygments.token import Keyword

        highlighter = window.chat_view._highlighter
        assert highlighter.style_name == "monokai"  # Pygments' dark style, for a dark palette
        assert highlighter.format_for(Keyword).foreground().color().lightness() > 128
        assert "colours" in window.chat_view.toPlainText()
        assert not window.styleSheet() and not window.chat_view.styleSheet()
    finally:
        app.setPalette(original)


def test_settings_dialog_changes_settings(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    shared = window.controllers.settings
    shared.hf_token = "hf_saved_on_the_models_page"  # the Models page shares this object
    dialog = SettingsDialog(window.controllers.settings, window)
    qtbot.addWidget(dialog)
    dialog.system_prompt.setPlainText("Answer in French.")
    dialog.max_tokens.setValue(12)
    dialog.temperature.setValue(0.3)
    window.models.update_settings(dialog.result_settings())
    assert window.controllers.settings is shared  # edited in place: nobody holds a stale copy
    from assistant.settings import Settings

    saved = Settings.load()
    assert (saved.system_prompt, saved.max_tokens, saved.temperature) == (
        "Answer in French.",
        12,
        0.3,
    )
    assert saved.hf_token == "hf_saved_on_the_models_page"
    assert send(qtbot, window, "bonjour").completion_tokens == 12
    # A new context size reloads the model.
    with qtbot.waitSignal(window.models.model_changed, timeout=60_000):
        dialog.n_ctx.setValue(1024)
        window.models.update_settings(dialog.result_settings())
    assert window.models.loaded.n_ctx == 1024


def test_desktop_file_and_icon() -> None:
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.read(REPO / "resources" / "assistant.desktop", encoding="utf-8")
    entry = desktop["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Exec"].startswith("assistant")
    assert entry["Icon"] == "assistant"
    icon = icon_path()
    assert icon is not None and icon.read_text(encoding="utf-8").lstrip().startswith("<svg")
    assert QKeySequence("Ctrl+N").toString() == "Ctrl+N"


def test_a_dead_instance_lock_is_taken_over(qtbot, assistant_home: Path) -> None:
    env = {**os.environ, "ASSISTANT_HOME": str(assistant_home), "QT_QPA_PLATFORM": "offscreen"}
    code = (
        "import os; from PySide6.QtWidgets import QApplication; app = QApplication([]);"
        "from assistant.ui.app import SingleInstance; s = SingleInstance();"
        "assert s.acquire(); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=60)
    assert paths.lock_path().exists()  # left behind by a crash
    instance = SingleInstance()
    assert instance.acquire()
    instance.release()


def test_keyboard_shortcuts_work(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    send(qtbot, window, "a chat")
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    qtbot.keyClick(window.composer.message_box, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    assert window.sidebar.search_field.hasFocus()
    qtbot.keyClick(window.sidebar.search_field, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.session.conversation_id is None


def test_models_page_opens_from_the_menu(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    window.models_action.trigger()
    dialog = window.dialogs.models_dialog
    assert dialog is not None and dialog.isVisible()
    window.models_action.trigger()  # the same dialog again, not a second one
    assert window.dialogs.models_dialog is dialog
    # Its "use this model" request swaps the chat's model.
    with qtbot.waitSignal(window.models.model_changed, timeout=60_000):
        dialog.use_model_requested.emit(str(tiny_models["b"]))
    dialog.close()


def test_assistant_command_opens_the_gui_and_quits_on_sigterm(
    qtbot, tiny_models, assistant_home
) -> None:
    import signal
    import time

    fast_settings(tiny_models["a"]).save()
    env = {**os.environ, "ASSISTANT_HOME": str(assistant_home), "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True
    )
    log_file = assistant_home / "logs" / "assistant.log"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if log_file.exists() and "Model tiny-a.gguf loaded" in log_file.read_text("utf-8"):
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in log_file.read_text("utf-8")
    instance = SingleInstance()
    assert instance.acquire()  # the lock was released
    instance.release()
