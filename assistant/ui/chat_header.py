"""Above the chat: the model picker, the Chat settings button, and the privacy mark shown while
this chat's messages go to a remote engine."""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMenu, QToolButton, QVBoxLayout, QWidget

from assistant.chat.settings import ChatSettings
from assistant.chat.turn import ModelChoice
from assistant.ui.model_picker import ModelPicker


class ChatHeader(QWidget):
    """Signals:
    documents_chosen(object): the collections this chat answers from now (a tuple of names).
    manage_documents_requested().
    """

    documents_chosen = Signal(object)
    manage_documents_requested = Signal()
    tools_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        # Which of the person's document collections this chat answers from.
        self.documents_button = QToolButton()
        self.documents_button.setAccessibleName("Documents")
        self.documents_button.setToolTip("Answer from your own files, with their sources")
        self.documents_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.documents_menu = QMenu(self.documents_button)
        self.documents_button.setMenu(self.documents_menu)
        self._collections: list[str] = []
        self._chosen: tuple[str, ...] = ()
        self._build_documents_menu()
        # Whether this chat offers the tools of the MCP servers in Settings.
        self.tools_button = QToolButton()
        self.tools_button.setText("Tools")
        self.tools_button.setAccessibleName("Tools")
        self.tools_button.setCheckable(True)
        self.tools_button.toggled.connect(self._on_tools_toggled)
        self._showing = False
        self.set_tool_servers([])
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
        row.addWidget(self.documents_button)
        row.addWidget(self.tools_button)
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

    @Slot(list)
    def set_collections(self, collections: list) -> None:
        """The collections there are (documents.index.Collection records)."""
        self._collections = [c.name for c in collections]
        self._build_documents_menu()

    @Slot(object)
    def show_chat_settings(self, settings: ChatSettings) -> None:
        """The open chat's settings: the collections it answers from, and its tools."""
        self._chosen = tuple(settings.documents)
        self._build_documents_menu()
        self._showing = True  # not a choice of the person's: no tools_toggled
        self.tools_button.setChecked(settings.tools)
        self._showing = False

    def set_tool_servers(self, names: list[str]) -> None:
        """The MCP servers in Settings: the Tools button works once there is one."""
        self.tools_button.setEnabled(bool(names))
        self.tools_button.setToolTip(
            f"Let the model call the tools of {', '.join(names)}; you approve each call"
            if names
            else "Add MCP servers (tool servers) in Settings to let the model call their tools"
        )

    @Slot(bool)
    def _on_tools_toggled(self, on: bool) -> None:
        if not self._showing:
            self.tools_toggled.emit(on)

    def _build_documents_menu(self) -> None:
        menu = self.documents_menu
        menu.clear()
        for name in self._collections:
            action = menu.addAction(name)
            action.setCheckable(True)
            action.setChecked(name in self._chosen)
            action.toggled.connect(lambda on, n=name: self._toggle(n, on))
        if self._collections:
            menu.addSeparator()
        menu.addAction("Manage documents...", self.manage_documents_requested.emit)
        chosen = [n for n in self._chosen if n in self._collections]
        self.documents_button.setText(f"Documents ({len(chosen)})" if chosen else "Documents")

    def _toggle(self, name: str, on: bool) -> None:
        chosen = [n for n in self._chosen if n != name] + ([name] if on else [])
        self.documents_chosen.emit(tuple(chosen))
