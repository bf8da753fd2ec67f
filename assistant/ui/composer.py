"""Where the person writes: the message box, Send (which becomes Stop while a reply streams),
Regenerate, and the note shown while an earlier message is being edited."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from assistant.chat.turn import TurnState
from assistant.ui.message_box import MessageBox


class Composer(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.message_box = MessageBox()
        # Drops go to the window (model import), not into the text.
        self.message_box.setAcceptDrops(False)
        self.message_box.viewport().setAcceptDrops(False)
        self.edit_label = QLabel(
            "Editing an earlier message: Enter sends it as a new branch (the old one stays, ‹ › "
            "switches), Esc cancels."
        )
        self.edit_label.setWordWrap(True)
        self.edit_label.hide()
        self.send_button = QPushButton("Send")
        self.send_button.setAccessibleName("Send")
        self.send_button.setDefault(False)
        self.send_button.setAutoDefault(False)
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setAccessibleName("Regenerate the last reply")
        self.regenerate_button.setToolTip("Regenerate the last reply (Ctrl+R)")

        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.regenerate_button)
        buttons.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.message_box, 1)
        row.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit_label)
        layout.addLayout(row)

    def show_state(self, state: TurnState, can_send: bool, has_conversation: bool) -> None:
        """Send, Stop or Stopping..., as the turn's state says."""
        self.message_box.send_enabled = can_send
        button = self.send_button
        if state == TurnState.GENERATING:
            button.setText("Stop")
            button.setAccessibleName("Stop")
            button.setToolTip("Stop the reply (Esc)")
            button.setEnabled(True)
        elif state == TurnState.STOPPING:
            button.setText("Stopping...")
            button.setAccessibleName("Stopping")
            button.setEnabled(False)
        else:
            button.setText("Send")
            button.setAccessibleName("Send")
            button.setToolTip("Send (Enter)")
            button.setEnabled(can_send)
        self.regenerate_button.setEnabled(can_send and has_conversation)

    def begin_edit(self, text: str) -> None:
        self.message_box.set_text(text)
        self.edit_label.show()

    def end_edit(self) -> None:
        """The edit was cancelled: the edited text goes, the note too."""
        if self.edit_label.isVisible():
            self.message_box.clear()
        self.edit_label.hide()
