"""Above the chat: the model picker, the Chat settings button, and the privacy mark shown while
this chat's messages go to a remote engine."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from assistant.chat.turn import ModelChoice
from assistant.ui.model_picker import ModelPicker


class ChatHeader(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model_picker = ModelPicker()
        self.settings_button = QToolButton()
        self.settings_button.setText("Chat settings")
        self.settings_button.setAccessibleName("Chat settings")
        self.settings_button.setToolTip(
            "This chat's temperature, length, context... (Ctrl+Shift+S)"
        )
        self.settings_button.setCheckable(True)
        # The privacy mark: shown while this chat's replies come from elsewhere.
        self.remote_mark = QLabel()
        self.remote_mark.setAccessibleName("Leaves this machine")
        self.remote_mark.setWordWrap(True)
        self.remote_mark.setStyleSheet(
            "QLabel { background: palette(highlight); color: palette(highlighted-text);"
            " padding: 3px 6px; border-radius: 3px; }"
        )
        self.remote_mark.hide()
        row = QHBoxLayout()
        row.addWidget(self.model_picker, 1)
        row.addWidget(self.settings_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.remote_mark)

    def show_remote(self, choice: ModelChoice | None, where: str = "") -> None:
        """Mark the chat as leaving this machine for ``choice``'s engine at ``where`` (None:
        its replies are written here)."""
        if choice is None:
            self.remote_mark.hide()
            return
        self.remote_mark.setText(
            f"↗ Leaves this machine: this chat's messages go to {choice.engine} ({where}), "
            f"which writes the replies with {choice.model}."
        )
        self.remote_mark.setToolTip(
            "Remote engines are added in Settings; “Local only” there hides and refuses them. "
            "The history stays on this computer."
        )
        self.remote_mark.show()
