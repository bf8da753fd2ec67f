"""The main window: layout, menus, shortcuts and the wiring between views and controllers.

Over 450 lines of wiring, not logic: the layout, the actions and menus, the connections between
the controllers and the views, and which view shows the controllers' state. Every part that
stands alone is a module of its own: the chat header (model picker, privacy mark), chat view,
sidebar, composer (message box and Send), status bar, banner, empty state, and the windows it
opens (window_dialogs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, Qt, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QProgressBar,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from assistant import APP_NAME
from assistant.chat.turn import ModelChoice, TurnState
from assistant.models.hub import ModelVariant
from assistant.records import Completion, LoadedModel
from assistant.ui.banner import Banner
from assistant.ui.chat_header import ChatHeader
from assistant.ui.chat_settings_panel import ChatSettingsPanel
from assistant.ui.chat_view import ChatView
from assistant.ui.composer import Composer
from assistant.ui.controllers import Controllers
from assistant.ui.empty_state import EmptyState
from assistant.ui.recommendation_card import RecommendationCard
from assistant.ui.sidebar import Sidebar
from assistant.ui.status_bar import StatusBar
from assistant.ui.window_dialogs import WindowDialogs

if TYPE_CHECKING:
    from assistant.ui.models_controller import JobView  # the Models page loads when opened


def icon_path() -> Path | None:
    here = Path(__file__).resolve()
    for candidate in (
        here.parents[2] / "resources" / "icons" / "assistant.svg",  # source checkout
        here.parents[1] / "resources" / "assistant.svg",  # installed package data
    ):
        if candidate.is_file():
            return candidate
    return None


class MainWindow(QMainWindow):
    def __init__(self, controllers: Controllers):
        super().__init__()
        controllers.setParent(self)  # destroyed with the window, on the GUI thread
        self.controllers = controllers
        self.session = controllers.session
        self.models = controllers.models
        self.conversations = controllers.conversations
        self._model_note: str | None = None  # the loaded model's template note, if any
        self.setWindowTitle(APP_NAME)
        self.setAccessibleName(APP_NAME)
        self.setAcceptDrops(True)
        if (icon := icon_path()) is not None:
            self.setWindowIcon(QIcon(str(icon)))
        self._build()
        self.dialogs = WindowDialogs(self, controllers)
        self._build_actions()
        self._connect()
        geometry = controllers.settings.window_geometry
        if geometry:
            self.restoreGeometry(QByteArray.fromBase64(geometry.encode("ascii")))
        else:
            self.resize(1100, 720)
        self._refresh_controls()

    # --- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        self.sidebar = Sidebar()
        self.header = ChatHeader()
        self.banner = Banner()
        self.recommendation = RecommendationCard()
        self.notice_label = QLabel()
        self.notice_label.setAccessibleName("Notice")
        self.notice_label.setWordWrap(True)
        self.notice_label.hide()
        self.chat_view = ChatView()
        # Drops go to the window (model import), not into the text widgets.
        self.chat_view.setAcceptDrops(False)
        self.chat_view.viewport().setAcceptDrops(False)
        self.empty_state = EmptyState()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.chat_view)
        self.stack.addWidget(self.empty_state)

        self.composer = Composer()

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(6, 6, 6, 6)
        right_layout.addWidget(self.header)
        right_layout.addWidget(self.banner)
        right_layout.addWidget(self.recommendation)
        right_layout.addWidget(self.stack, 1)
        # In the chat too, not only in the status bar: a model loading is why Send waits.
        self.chat_progress = QProgressBar()
        self.chat_progress.setAccessibleName("Loading the model")
        self.chat_progress.setRange(0, 100)
        self.chat_progress.hide()
        right_layout.addWidget(self.chat_progress)
        right_layout.addWidget(self.notice_label)
        right_layout.addWidget(self.composer)

        self.chat_settings_panel = ChatSettingsPanel(self.controllers.settings)
        self.chat_settings_panel.hide()

        splitter = QSplitter()
        splitter.addWidget(self.sidebar)
        splitter.addWidget(right)
        splitter.addWidget(self.chat_settings_panel)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([260, 840, 260])
        self.setCentralWidget(splitter)

        self.status_bar = StatusBar()
        self.setStatusBar(self.status_bar)

    def _build_actions(self) -> None:
        def action(
            text: str, slot: Callable[[], object], *shortcuts: str | QKeySequence.StandardKey
        ) -> QAction:
            a = QAction(text, self)
            if shortcuts:
                a.setShortcuts([QKeySequence(s) for s in shortcuts])
            a.triggered.connect(slot)
            self.addAction(a)  # shortcuts work even with the menu bar hidden
            return a

        self.new_action = action("&New chat", self.session.new_conversation, "Ctrl+N")
        self.add_model_action = action(
            "&Add a GGUF file...", self.dialogs.choose_model_file, "Ctrl+O"
        )
        self.export_md_action = action("Export as &Markdown...", self.dialogs.export_markdown)
        self.export_json_action = action("Export as &JSON...", self.dialogs.export_json)
        self.models_action = action(
            "Browse and download &models...", self.dialogs.open_models, "Ctrl+M"
        )
        self.documents_action = action("&Documents...", self.dialogs.open_documents, "Ctrl+Shift+D")
        self.settings_action = action("&Settings...", self.dialogs.open_settings, "Ctrl+,")
        self.quit_action = action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.search_action = action("&Search chats", self.sidebar.focus_search, "Ctrl+F", "Ctrl+K")
        self.rename_action = action("&Rename chat", self.sidebar.rename_current, "F2")
        self.regenerate_action = action("&Regenerate reply", self.session.regenerate, "Ctrl+R")
        self.conversation_settings_action = action(
            "C&onversation settings...", self.open_conversation_settings
        )
        self.chat_settings_action = action(
            "Chat se&ttings panel", self.toggle_chat_settings, "Ctrl+Shift+S"
        )
        self.stop_action = action("S&top", self.on_escape, "Esc")
        self.delete_all_action = action("&Delete all conversations...", self.confirm_delete_all)
        self.monitor_action = action("&Monitor", self.open_monitor, "Ctrl+Shift+M")

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for a in (
            self.new_action,
            self.add_model_action,
            self.models_action,
            self.documents_action,
            None,
            self.export_md_action,
            self.export_json_action,
            None,
            self.settings_action,
            None,
            self.quit_action,
        ):
            file_menu.addSeparator() if a is None else file_menu.addAction(a)
        chat_menu = menu.addMenu("&Chat")
        for a in (
            self.search_action,
            self.rename_action,
            self.conversation_settings_action,
            self.chat_settings_action,
            None,
            self.regenerate_action,
            self.stop_action,
            None,
            self.delete_all_action,
        ):
            chat_menu.addSeparator() if a is None else chat_menu.addAction(a)
        menu.addMenu("&View").addAction(self.monitor_action)

    def _connect(self) -> None:
        conversations, session, models = self.conversations, self.session, self.models
        conversations.conversations_changed.connect(self.sidebar.set_conversations)
        conversations.search_results.connect(self.sidebar.set_search_results)
        session.conversation_opened.connect(self.sidebar.select_conversation)
        session.conversation_opened.connect(self.chat_view.show_conversation)
        session.conversation_opened.connect(self._on_conversation_opened)
        session.message_added.connect(self.chat_view.add_message)
        session.message_added.connect(self._on_message_added)
        session.reply_started.connect(self.chat_view.begin_reply)
        session.reply_text_appended.connect(self.chat_view.append_reply_text)
        session.reply_finished.connect(self.chat_view.finish_reply)
        session.reply_finished.connect(self._refresh_controls)
        session.state_changed.connect(self._on_state_changed)
        session.edit_started.connect(self._on_edit_started)
        session.edit_cancelled.connect(self._on_edit_cancelled)
        session.stats_updated.connect(self._on_stats)
        session.remote_changed.connect(self.header.model_picker.set_remote)
        session.remote_changed.connect(self._on_remote_changed)
        session.reasoning_appended.connect(self.chat_view.append_reasoning_text)
        session.chat_settings_changed.connect(self.chat_settings_panel.show_settings)
        self.chat_settings_panel.settings_edited.connect(session.set_chat_settings)
        self.header.settings_button.toggled.connect(self.chat_settings_panel.setVisible)
        session.chat_settings_changed.connect(self.header.show_chat_settings)
        self.header.documents_chosen.connect(session.set_chat_documents)
        self.header.manage_documents_requested.connect(self.dialogs.open_documents)
        documents = self.controllers.documents
        documents.collections_changed.connect(self.header.set_collections)
        self.header.tools_toggled.connect(session.set_chat_tools)
        self.header.set_tool_servers(list(self.controllers.settings.mcp_servers))
        engine = self.controllers.link.engine
        engine.tool_approval_requested.connect(self.dialogs.ask_tool_approval)
        session.reasoning_appended.connect(self.status_bar.show_thinking)
        session.reply_started.connect(self.status_bar.begin_reply)
        session.reply_text_appended.connect(self.status_bar.show_answer_text)
        models.models_changed.connect(self.header.model_picker.set_models)
        models.model_loading.connect(self.header.model_picker.set_loading)
        models.model_loading.connect(self._on_model_loading)
        models.model_load_progress.connect(self._on_load_progress)
        models.model_changed.connect(self.header.model_picker.set_current)
        models.model_changed.connect(self._on_model_changed)
        models.model_missing.connect(self._on_model_missing)
        models.engine_started.connect(self._on_engine_started)
        for source in (conversations, session, models, documents):
            source.notice.connect(self.show_notice)
            source.error.connect(self.show_error)
        self.controllers.remote_engines.changed.connect(self.header.model_picker.set_engines)
        self.controllers.first_run.recommended.connect(self.recommendation.show_recommendation)
        self.recommendation.dismissed.connect(self.controllers.first_run.dismiss)
        self.recommendation.download_requested.connect(self.download_recommended)

        self.sidebar.new_requested.connect(session.new_conversation)
        self.sidebar.open_requested.connect(session.open_conversation)
        self.sidebar.hit_requested.connect(session.open_message)
        self.chat_view.version_requested.connect(session.show_version)
        self.sidebar.rename_requested.connect(conversations.rename)
        self.sidebar.delete_requested.connect(conversations.delete)
        self.sidebar.settings_requested.connect(self.dialogs.edit_conversation_settings)
        self.sidebar.search_requested.connect(conversations.search)
        self.chat_view.edit_requested.connect(session.begin_edit)
        self.composer.message_box.send_requested.connect(session.send)
        self.header.model_picker.model_selected.connect(session.select_model)
        self.header.model_picker.remote_selected.connect(session.select_remote)
        self.header.model_picker.add_requested.connect(self.dialogs.choose_model_file)
        self.empty_state.add_button.clicked.connect(self.dialogs.choose_model_file)
        self.empty_state.browse_button.clicked.connect(self.dialogs.open_models)
        self.composer.send_button.clicked.connect(self.on_send_clicked)
        self.composer.regenerate_button.clicked.connect(session.regenerate)

    # --- rendering the controllers' state --------------------------------------------------------

    @Slot()
    def _refresh_controls(self, *_: object) -> None:
        c = self.session
        has_conversation = c.conversation_id is not None
        self.composer.show_state(c.state, c.can_send(), has_conversation)
        self.regenerate_action.setEnabled(c.can_send() and has_conversation)
        self.export_md_action.setEnabled(has_conversation)
        self.export_json_action.setEnabled(has_conversation)
        self.rename_action.setEnabled(has_conversation)

    @Slot(str)
    def _on_state_changed(self, state: str) -> None:
        if state == TurnState.STOPPING:
            self.status_bar.showMessage("Stopping...")
        elif state == TurnState.IDLE:
            self.status_bar.clearMessage()
        self._refresh_controls()

    @Slot(object, list)
    def _on_conversation_opened(self, _conversation_id: int | None, messages: list) -> None:
        self.notice_label.hide()
        m = self.models
        if messages:
            self.stack.setCurrentWidget(self.chat_view)  # history stays readable without a model
        elif m.loaded is None and not m.is_loading and self.empty_state.text.text():
            self.stack.setCurrentWidget(self.empty_state)
        self._refresh_controls()

    @Slot()
    def on_send_clicked(self) -> None:
        if self.session.state == TurnState.GENERATING:
            # Sets the stop Event right here, on the GUI thread: the engine sees it next token.
            self.session.stop()
        else:
            self.composer.message_box.submit()

    @Slot()
    def on_escape(self) -> None:
        if self.session.editing is not None:
            self.session.cancel_edit()
        else:
            self.session.stop()

    @Slot(object)
    def _on_message_added(self, message: object) -> None:
        if getattr(message, "role", None) == "user":
            self.composer.message_box.clear()  # stored: only now is the typed text safe to drop

    @Slot(int, str)
    def _on_edit_started(self, _message_id: int, text: str) -> None:
        self.composer.begin_edit(text)

    @Slot()
    def _on_edit_cancelled(self) -> None:
        self.composer.end_edit()

    @Slot(str)
    def _on_model_loading(self, name: str) -> None:
        if self.session.remote is not None:
            self._refresh_controls()  # a model loads here for later; this chat is elsewhere
            return
        self.status_bar.show_loading(name)
        self.chat_progress.setFormat(f"Loading {name}... %p%" if name else "Looking for a model...")
        self.chat_progress.setValue(0)
        self.chat_progress.show()
        self._refresh_controls()

    @Slot(float)
    def _on_load_progress(self, fraction: float) -> None:
        self.status_bar.progress.setValue(round(fraction * 100))
        self.chat_progress.setValue(round(fraction * 100))

    @Slot(object)
    def _on_remote_changed(self, choice: ModelChoice | None) -> None:
        """The chat's replies come from a remote engine (a ModelChoice), or from here (None)."""
        if choice is None:
            self.header.show_remote(None)
            self._on_model_changed(self.models.loaded)
            return
        engine = self.controllers.remote_engines.engine(choice.engine or "")
        where = engine.url if engine is not None else "a remote engine"
        self.header.show_remote(choice, where)
        self.status_bar.show_remote(choice.label, where)
        self.chat_progress.hide()
        self.stack.setCurrentWidget(self.chat_view)
        self._refresh_controls()

    @Slot(object)
    def _on_model_changed(self, loaded: LoadedModel | None) -> None:
        if self.session.remote is not None:
            self._hide_progress()
            self._refresh_controls()  # the chat's model is elsewhere; this one waits
            return
        if self.models.is_loading:
            self._refresh_controls()
            return
        self._clear_model_note(getattr(loaded, "template_note", None))
        self.chat_progress.hide()
        self.status_bar.show_model(loaded)
        if loaded is not None:
            self.stack.setCurrentWidget(self.chat_view)
        self._refresh_controls()

    def _hide_progress(self) -> None:
        self.status_bar.progress.hide()
        self.chat_progress.hide()

    def _clear_model_note(self, note: str | None) -> None:
        """A note about the previous model's chat template is not about this one: drop it."""
        old = self._model_note
        if old and old != note:
            if self.notice_label.text() == old:
                self.notice_label.hide()
                self.notice_label.clear()
            if self.status_bar.currentMessage() == old:
                self.status_bar.clearMessage()
        self._model_note = note

    @Slot(str)
    def _on_model_missing(self, text: str) -> None:
        self._clear_model_note(None)
        self.empty_state.set_help(text)
        if self.session.remote is not None:
            return  # this chat runs on a remote engine: no local model is needed for it
        self.stack.setCurrentWidget(self.empty_state)
        self._hide_progress()
        self.status_bar.show_no_model()
        self._refresh_controls()

    @Slot(object)
    def _on_stats(self, completion: Completion) -> None:
        loaded = self.models.loaded
        local = self.session.remote is None and loaded is not None
        self.status_bar.show_stats(completion, loaded.n_ctx if local and loaded else None)

    @Slot(str)
    def _on_engine_started(self, _url: str) -> None:
        self.status_bar.show_local_api(self.models.local_api_url)

    @Slot(str)
    def show_notice(self, text: str) -> None:
        self.notice_label.setText(text)
        self.notice_label.show()
        self.status_bar.showMessage(text, 10_000)

    @Slot(str)
    def show_error(self, text: str) -> None:
        self.banner.show_message(text)

    def bring_to_front(self) -> None:
        """Another launch asked this instance to show itself."""
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()

    # --- what the actions open -------------------------------------------------------------

    @Slot()
    def toggle_chat_settings(self) -> None:
        """Show or hide this chat's settings panel (its button shows which)."""
        self.header.settings_button.toggle()

    @Slot()
    def open_conversation_settings(self) -> None:
        """The open conversation's own settings (for a new chat: kept until it is saved)."""
        self.dialogs.edit_conversation_settings(self.session.conversation_id)

    @Slot()
    def confirm_delete_all(self) -> None:
        self.dialogs.confirm_delete_all(self.sidebar.conversation_list.count())

    @Slot(ModelVariant)
    def download_recommended(self, variant: ModelVariant) -> None:
        """One click: the Models page opens on the recommended model's download."""
        self.dialogs.open_models()
        dialog = self.dialogs.models_dialog
        assert dialog is not None
        # The card hears how its download ends (connected once, however often it is asked).
        dialog.controller.job_changed.connect(
            self._on_download_changed, Qt.ConnectionType.UniqueConnection
        )
        dialog.download(variant)

    @Slot(object)
    def _on_download_changed(self, job: JobView) -> None:
        self.recommendation.on_download_changed(job.variant, job.state)

    @Slot()
    def open_monitor(self) -> None:
        if not self.dialogs.open_monitor():
            self.show_error("The engine has not started yet; try again in a moment.")

    # --- drag and drop, closing ------------------------------------------------------------

    @staticmethod
    def _dropped_models(event: QDragEnterEvent | QDropEvent) -> list[str]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [
            u.toLocalFile()
            for u in mime.urls()
            if u.isLocalFile() and u.toLocalFile().lower().endswith(".gguf")
        ]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if self._dropped_models(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        paths = self._dropped_models(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        for path in paths:
            self.models.import_model(path)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        settings = self.controllers.settings
        settings.window_geometry = bytes(self.saveGeometry().toBase64().data()).decode("ascii")
        self.models.save_settings()
        self.dialogs.shutdown()
        self.controllers.shutdown()
        event.accept()
