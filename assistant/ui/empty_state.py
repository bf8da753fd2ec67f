"""What the main window shows instead of the chat when there is no model at all."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


class EmptyState(QWidget):
    """Shown when there is no model at all: how to get one, and a button to add one."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAccessibleName("No model installed")
        title = QLabel("<h2>No model yet</h2>")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.add_button = QPushButton("Add a GGUF file...")
        self.add_button.setAccessibleName("Add a GGUF file")
        self.browse_button = QPushButton("Browse and download models...")
        self.browse_button.setAccessibleName("Browse and download models")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.browse_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(title)
        layout.addWidget(self.text)
        layout.addLayout(buttons)
        layout.addStretch(2)

    def set_help(self, text: str) -> None:
        self.text.setText(text)
