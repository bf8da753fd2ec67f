"""The question before a tool runs: which tool, of which server, with which arguments; allow it
once, always (for that tool), or not."""

from __future__ import annotations

import json

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from assistant.chat import tool_turn


class ToolApprovalDialog(QDialog):
    """Signals: answered(str, str): the tool ("server/name") and ONCE, ALWAYS or DENY."""

    answered = Signal(str, str)

    def __init__(self, call: dict, parent: QWidget | None = None):
        super().__init__(parent)
        self.tool = str(call.get("tool", ""))
        self.setWindowTitle("Run a tool?")
        self.setAccessibleName("Run a tool?")
        server = call.get("server", "")
        text = QLabel(
            f"The model wants to run <b>{self.tool}</b>."
            + (f"<br>{call['description'].splitlines()[0]}" if call.get("description") else "")
            + f"<br><small>{server} is a program you added in Settings; it runs with your "
            "permissions and may read or send what it is given.</small>"
        )
        text.setWordWrap(True)
        arguments = QPlainTextEdit()
        arguments.setReadOnly(True)
        arguments.setAccessibleName("Its arguments")
        try:
            shown = json.dumps(json.loads(call.get("arguments") or "{}"), indent=2,
                               ensure_ascii=False)  # fmt: skip
        except ValueError:
            shown = str(call.get("arguments", ""))
        arguments.setPlainText(shown)
        self.once_button = QPushButton("Allow once")
        self.always_button = QPushButton(f"Always allow {self.tool}")
        self.deny_button = QPushButton("Deny")
        self.deny_button.setDefault(True)  # Enter does not run something by accident
        buttons = QHBoxLayout()
        for b in (self.deny_button, self.always_button, self.once_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(arguments)
        layout.addLayout(buttons)
        self._answer = tool_turn.DENY
        self.once_button.clicked.connect(lambda: self._choose(tool_turn.ONCE))
        self.always_button.clicked.connect(lambda: self._choose(tool_turn.ALWAYS))
        self.deny_button.clicked.connect(lambda: self._choose(tool_turn.DENY))
        self.finished.connect(self._on_finished)

    def _choose(self, answer: str) -> None:
        self._answer = answer
        self.accept()

    @Slot(int)
    def _on_finished(self, _result: int) -> None:
        # Closed with Esc or the window's close button: denied.
        self.answered.emit(self.tool, self._answer)
