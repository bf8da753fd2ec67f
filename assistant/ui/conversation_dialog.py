"""A small dialog for one conversation's own settings: its system prompt."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)


class ConversationSettingsDialog(QDialog):
    """Edit a conversation's system prompt; left empty, the default from Settings is used."""

    def __init__(
        self, title: str, system_prompt: str, default_prompt: str, parent: QWidget | None = None
    ):
        super().__init__(parent)
        self.setWindowTitle("Conversation settings")
        self.setAccessibleName("Conversation settings")
        heading = QLabel(f"System prompt for “{title}”:")
        heading.setWordWrap(True)
        self.system_prompt = QPlainTextEdit(system_prompt)
        self.system_prompt.setAccessibleName("Conversation system prompt")
        # The placeholder shows what an empty field means: the default applies.
        self.system_prompt.setPlaceholderText(default_prompt or "No system prompt")
        self.system_prompt.setMaximumHeight(160)
        hint = QLabel("Leave it empty to use the default system prompt from Settings.")
        hint.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(self.system_prompt)
        layout.addWidget(hint)
        layout.addWidget(buttons)

    def prompt(self) -> str:
        """The prompt entered; empty means use the default."""
        return self.system_prompt.toPlainText().strip()
