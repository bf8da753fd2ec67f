"""Where the user types: Enter sends, Shift+Enter starts a new line."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit, QWidget


class MessageBox(QPlainTextEdit):
    """A multi-line input that emits the text on Enter.

    Signals:
        send_requested(str): Enter was pressed with some text. The box keeps the text until the
            window clears it, once the message is stored: a failed send loses nothing.
    """

    send_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("messageBox")
        self.setAccessibleName("Message")
        self.setAccessibleDescription("Enter sends, Shift+Enter adds a new line")
        self.setPlaceholderText("Message Assistant (Enter to send, Shift+Enter for a new line)")
        self.setTabChangesFocus(True)
        self.setMaximumHeight(140)
        self.setMinimumHeight(56)
        # Whether sending is possible now; set by the window from the session's state.
        self.send_enabled = True

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.submit()
            return
        super().keyPressEvent(event)

    def submit(self) -> None:
        text = self.toPlainText()
        if not text.strip() or not self.send_enabled:
            return
        self.send_requested.emit(text)

    def set_text(self, text: str) -> None:
        self.setPlainText(text)
        cursor = self.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        self.setTextCursor(cursor)
        self.setFocus()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        hint = super().sizeHint()
        hint.setHeight(72)
        return hint
