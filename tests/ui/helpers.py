"""Helpers for driving the GUI in tests."""

from __future__ import annotations

# Generous: the machine running the suite is small and shared.
LOAD_TIMEOUT_MS = 60_000
REPLY_TIMEOUT_MS = 60_000


def wait_ready(qtbot, window) -> None:
    """Wait until a model is loaded and nothing is loading."""
    c = window.controller
    qtbot.waitUntil(
        lambda: c.loaded_model is not None and not c.is_loading, timeout=LOAD_TIMEOUT_MS
    )


def send(qtbot, window, text: str, timeout: int = REPLY_TIMEOUT_MS):
    """Type a message, press Enter, and return the stored reply once it has finished."""
    from PySide6.QtCore import Qt

    box = window.message_box
    box.setFocus()
    box.setPlainText(text)
    with qtbot.waitSignal(window.controller.reply_finished, timeout=timeout) as blocker:
        qtbot.keyClick(box, Qt.Key.Key_Return)
    return blocker.args[0]
