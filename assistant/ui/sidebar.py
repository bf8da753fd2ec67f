"""The conversation list: new, rename, delete, and search over every message as you type."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QSize,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from assistant.conversations.search import format_snippet

_ID = Qt.ItemDataRole.UserRole


def _plain_snippet(snippet: str) -> str:
    """The list shows plain text: the matched words in «», whitespace folded."""
    return " ".join(format_snippet(snippet, "«", "»").split())


SEARCH_DELAY_MS = 150


class _ElidingDelegate(QStyledItemDelegate):
    """Items as wide as the list, not as their text: a long title is elided, not scrolled.

    QListView makes each row max(its size hint, the viewport) wide, so a hint of no width
    leaves the viewport's width, and the style elides the text to fit it.
    """

    def sizeHint(  # noqa: N802 (Qt override)
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        size = super().sizeHint(option, index)
        return QSize(0, size.height())


class Sidebar(QWidget):
    """Signals:
    new_requested(), open_requested(int), rename_requested(int, str), delete_requested(int),
    settings_requested(int): the conversation's own settings (its system prompt),
    hit_requested(int, int): a search hit's conversation and message (its branch is shown),
    search_requested(str): the text in the search field, once typing pauses (SEARCH_DELAY_MS;
        at once when the field is cleared).
    """

    new_requested = Signal()
    open_requested = Signal(int)
    rename_requested = Signal(int, str)
    delete_requested = Signal(int)
    settings_requested = Signal(int)
    search_requested = Signal(str)
    hit_requested = Signal(int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.new_button = QPushButton("New chat")
        self.new_button.setAccessibleName("New chat")
        self.new_button.setToolTip("New chat (Ctrl+N)")
        self.new_button.clicked.connect(self.new_requested)

        self.search_field = QLineEdit()
        self.search_field.setAccessibleName("Search all chats")
        self.search_field.setPlaceholderText("Search all chats (Ctrl+K)")
        self.search_field.setClearButtonEnabled(True)
        # One search once typing pauses, not one per keystroke: a search may scan the messages.
        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self._search_now)
        self.search_field.textChanged.connect(self._on_search_text)

        self.conversation_list = QListWidget()
        self.conversation_list.setAccessibleName("Conversations")
        # Long titles end in "…" (the full title is the tooltip) instead of scrolling sideways.
        self.conversation_list.setItemDelegate(_ElidingDelegate(self.conversation_list))
        self.conversation_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.conversation_list.setWordWrap(False)
        self.conversation_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.conversation_list.setEditTriggers(
            QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        self.conversation_list.itemActivated.connect(self._on_item_activated)
        self.conversation_list.itemClicked.connect(self._on_item_activated)
        self.conversation_list.itemChanged.connect(self._on_item_changed)
        self.conversation_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.conversation_list.customContextMenuRequested.connect(self._show_menu)
        delete = QShortcut(QKeySequence.StandardKey.Delete, self.conversation_list)
        delete.setContext(Qt.ShortcutContext.WidgetShortcut)
        delete.activated.connect(self._delete_current)

        self.hit_list = QListWidget()
        self.hit_list.setAccessibleName("Search results")
        self.hit_list.setWordWrap(True)
        self.hit_list.itemActivated.connect(self._on_hit_activated)
        self.hit_list.itemClicked.connect(self._on_hit_activated)
        self.no_hits = QLabel("No messages match.")
        self.no_hits.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_hits.setWordWrap(True)

        self.stack = QStackedWidget()
        self.stack.addWidget(self.conversation_list)
        self.stack.addWidget(self.hit_list)
        self.stack.addWidget(self.no_hits)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search_field)
        layout.addWidget(self.stack, 1)
        self._current: int | None = None
        self._filling = False

    # --- rendering -------------------------------------------------------------------------

    @Slot(list)
    def set_conversations(self, conversations: list) -> None:
        self._filling = True
        try:
            self.conversation_list.clear()
            for conversation in conversations:
                item = QListWidgetItem(conversation.title)
                item.setData(_ID, conversation.id)
                item.setToolTip(conversation.title)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                self.conversation_list.addItem(item)
                if conversation.id == self._current:
                    item.setSelected(True)
                    self.conversation_list.setCurrentItem(item)
        finally:
            self._filling = False

    @Slot(object, list)
    def select_conversation(
        self, conversation_id: int | None, _messages: list | None = None
    ) -> None:
        self._current = conversation_id
        self._filling = True
        try:
            self.conversation_list.clearSelection()
            for item in self._items():
                if item.data(_ID) == conversation_id:
                    self.conversation_list.setCurrentItem(item)
        finally:
            self._filling = False

    @Slot(str, list)
    def set_search_results(self, query: str, hits: list) -> None:
        if query != self.search_field.text().strip():
            return  # an answer to an older keystroke
        if not query:
            self.stack.setCurrentWidget(self.conversation_list)
            return
        self.hit_list.clear()
        for hit in hits:
            if hit.role == "title":
                item = QListWidgetItem(f"{_plain_snippet(hit.snippet)}\nTitle")
            else:
                who = "You" if hit.role == "user" else "Assistant"
                item = QListWidgetItem(f"{hit.title}\n{who}: {_plain_snippet(hit.snippet)}")
            item.setData(_ID, (hit.conversation_id, hit.message_id))
            self.hit_list.addItem(item)
        self.stack.setCurrentWidget(self.hit_list if hits else self.no_hits)

    @Slot(str)
    def _on_search_text(self, text: str) -> None:
        if text.strip():
            self._search_timer.start()
        else:
            self._search_timer.stop()
            self.search_requested.emit(text)

    @Slot()
    def _search_now(self) -> None:
        self.search_requested.emit(self.search_field.text())

    def focus_search(self) -> None:
        self.search_field.setFocus()
        self.search_field.selectAll()

    def _items(self) -> list[QListWidgetItem]:
        return [self.conversation_list.item(i) for i in range(self.conversation_list.count())]

    # --- intents ---------------------------------------------------------------------------

    @Slot(QListWidgetItem)
    def _on_item_activated(self, item: QListWidgetItem) -> None:
        conversation_id = item.data(_ID)
        if conversation_id != self._current:
            self.open_requested.emit(conversation_id)

    @Slot(QListWidgetItem)
    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if not self._filling:
            self.rename_requested.emit(item.data(_ID), item.text())

    @Slot(QListWidgetItem)
    def _on_hit_activated(self, item: QListWidgetItem) -> None:
        conversation_id, message_id = item.data(_ID)
        if message_id is None:  # a match in the title
            self.open_requested.emit(conversation_id)
        else:
            self.hit_requested.emit(conversation_id, message_id)

    @Slot(QPoint)
    def _show_menu(self, pos: QPoint) -> None:
        item = self.conversation_list.itemAt(pos)
        if item is None:
            return
        menu = self.context_menu(item)
        menu.exec(self.conversation_list.viewport().mapToGlobal(pos))
        menu.deleteLater()

    def context_menu(self, item: QListWidgetItem) -> QMenu:
        """The menu for one conversation: rename, its settings, delete."""
        conversation_id = item.data(_ID)
        menu = QMenu(self)
        # By id, not by item: the list may be refilled (its items deleted) while the menu is open.
        rename = menu.addAction("Rename")
        rename.triggered.connect(lambda: self._with_item(conversation_id, self._edit))
        settings = menu.addAction("Conversation settings...")
        settings.triggered.connect(lambda: self.settings_requested.emit(conversation_id))
        menu.addSeparator()
        delete = menu.addAction("Delete...")
        delete.triggered.connect(lambda: self._with_item(conversation_id, self.confirm_delete))
        return menu

    def _with_item(self, conversation_id: int, fn: Callable[[QListWidgetItem], object]) -> None:
        for item in self._items():
            if item.data(_ID) == conversation_id:
                fn(item)
                return

    def _edit(self, item: QListWidgetItem) -> None:
        self.conversation_list.editItem(item)

    @Slot()
    def _delete_current(self) -> None:
        item = self.conversation_list.currentItem()
        if item is not None:
            self.confirm_delete(item)

    def rename_current(self) -> None:
        item = self.conversation_list.currentItem()
        if item is not None:
            self.conversation_list.editItem(item)

    def confirm_delete(self, item: QListWidgetItem) -> None:
        answer = QMessageBox.question(
            self,
            "Delete conversation",
            f"Delete “{item.text()}” and all its messages? This can't be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_requested.emit(item.data(_ID))
