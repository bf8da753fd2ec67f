"""Helpers for driving the GUI in tests."""

from __future__ import annotations

# Generous: the machine running the suite is small and shared.
LOAD_TIMEOUT_MS = 60_000
REPLY_TIMEOUT_MS = 60_000


def wait_ready(qtbot, window) -> None:
    """Wait until a model is loaded and nothing is loading."""
    models = window.models
    qtbot.waitUntil(
        lambda: models.loaded is not None and not models.is_loading, timeout=LOAD_TIMEOUT_MS
    )


def send(qtbot, window, text: str, timeout: int = REPLY_TIMEOUT_MS):
    """Type a message, press Enter, and return the stored reply once it has finished."""
    from PySide6.QtCore import Qt

    box = window.composer.message_box
    box.setFocus()
    box.setPlainText(text)
    with qtbot.waitSignal(window.session.reply_finished, timeout=timeout) as blocker:
        qtbot.keyClick(box, Qt.Key.Key_Return)
    return blocker.args[0]


def shown_messages(window, kind: str) -> list[str]:
    """Every "error" (or "notice") any of the window's controllers emits from now on."""
    seen: list[str] = []
    c = window.controllers
    for source in (c.conversations, c.session, c.models):
        getattr(source, kind).connect(seen.append)
    return seen


def dark_palette():
    """A dark palette, as a desktop in dark mode gives the app."""
    from PySide6.QtGui import QColor, QPalette

    dark = QPalette()
    for role, colour in (
        (QPalette.ColorRole.Window, "#202124"),
        (QPalette.ColorRole.WindowText, "#e8eaed"),
        (QPalette.ColorRole.Base, "#17181a"),
        (QPalette.ColorRole.AlternateBase, "#2a2b2e"),
        (QPalette.ColorRole.Text, "#e8eaed"),
        (QPalette.ColorRole.Button, "#2a2b2e"),
        (QPalette.ColorRole.ButtonText, "#e8eaed"),
        (QPalette.ColorRole.Highlight, "#8ab4f8"),
        (QPalette.ColorRole.HighlightedText, "#202124"),
        (QPalette.ColorRole.Link, "#8ab4f8"),
        (QPalette.ColorRole.PlaceholderText, "#9aa0a6"),
    ):
        dark.setColor(role, QColor(colour))
    return dark
