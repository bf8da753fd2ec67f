"""The main window: layout, menus, shortcuts and the wiring between views and controllers.

Over 400 lines of wiring, not logic: the layout, two dozen actions and menus, the connections
between four controllers and the views, and the status bar's rendering of their state. Every
part that stands alone is a module of its own (chat_view, sidebar, model_picker, banner,
empty_state, the dialogs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from assistant import APP_NAME
from assistant.chat import ModelChoice, TurnState
from assistant.engine.records import Completion, LoadedModel
from assistant.export import ExportFormat
from assistant.ui.banner import Banner
from assistant.ui.chat_settings_panel import ChatSettingsPanel
from assistant.ui.chat_view import ChatView
from assistant.ui.controllers import Controllers
from assistant.ui.conversation_dialog import ConversationSettingsDialog
from assistant.ui.empty_state import EmptyState
from assistant.ui.message_box import MessageBox
from assistant.ui.model_picker import ModelPicker
from assistant.ui.monitor_view import MonitorView
from assistant.ui.settings_dialog import SettingsDialog
from assistant.ui.sidebar import Sidebar

if TYPE_CHECKING:
    from assistant.ui.models_dialog import ModelsDialog


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
        self.monitor: MonitorView | None = None
        self._models_dialog: ModelsDialog | None = None
        self._model_note: str | None = None  # the loaded model's template note, if any
        self._thought_chars = 0  # of the reply streaming now
        self.setWindowTitle(APP_NAME)
        self.setAccessibleName(APP_NAME)
        self.setAcceptDrops(True)
        if (icon := icon_path()) is not None:
            self.setWindowIcon(QIcon(str(icon)))
        self._build()
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
        self.model_picker = ModelPicker()
        # The chat header's privacy mark: shown while this chat's replies come from elsewhere.
        self.remote_mark = QLabel()
        self.remote_mark.setAccessibleName("Leaves this machine")
        self.remote_mark.setWordWrap(True)
        self.remote_mark.setStyleSheet(
            "QLabel { background: palette(highlight); color: palette(highlighted-text);"
            " padding: 3px 6px; border-radius: 3px; }"
        )
        self.remote_mark.hide()
        self.banner = Banner()
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

        self.message_box = MessageBox()
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
        input_row = QHBoxLayout()
        input_row.addWidget(self.message_box, 1)
        input_row.addLayout(buttons)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(6, 6, 6, 6)
        header = QHBoxLayout()
        header.addWidget(self.model_picker, 1)
        self.settings_button = QToolButton()
        self.settings_button.setText("Chat settings")
        self.settings_button.setAccessibleName("Chat settings")
        self.settings_button.setToolTip(
            "This chat's temperature, length, context... (Ctrl+Shift+S)"
        )
        self.settings_button.setCheckable(True)
        header.addWidget(self.settings_button)
        right_layout.addLayout(header)
        right_layout.addWidget(self.remote_mark)
        right_layout.addWidget(self.banner)
        right_layout.addWidget(self.stack, 1)
        # In the chat too, not only in the status bar: a model loading is why Send waits.
        self.chat_progress = QProgressBar()
        self.chat_progress.setAccessibleName("Loading the model")
        self.chat_progress.setRange(0, 100)
        self.chat_progress.hide()
        right_layout.addWidget(self.chat_progress)
        right_layout.addWidget(self.notice_label)
        right_layout.addWidget(self.edit_label)
        right_layout.addLayout(input_row)

        self.chat_settings_panel = ChatSettingsPanel(self.controllers.settings)
        self.chat_settings_panel.hide()

        splitter = QSplitter()
        splitter.addWidget(self.sidebar)
        splitter.addWidget(right)
        splitter.addWidget(self.chat_settings_panel)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([260, 840, 260])
        self.setCentralWidget(splitter)

        status = self.statusBar()
        self.model_label = QLabel("No model")
        self.model_label.setAccessibleName("Model status")
        self.backend_label = QLabel()
        self.backend_label.setAccessibleName("Backend")
        self.speed_label = QLabel()
        self.speed_label.setAccessibleName("Speed")
        self.ttft_label = QLabel()
        self.ttft_label.setAccessibleName("Time to first token")
        self.context_label = QLabel()
        self.context_label.setAccessibleName("Context used")
        self.api_label = QLabel()
        self.api_label.setAccessibleName("Local API")
        self.api_label.hide()
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Model loading progress")
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(160)
        self._hide_progress()
        status.addWidget(self.model_label)
        status.addWidget(self.progress)
        status.addPermanentWidget(self.speed_label)
        status.addPermanentWidget(self.ttft_label)
        status.addPermanentWidget(self.context_label)
        status.addPermanentWidget(self.backend_label)
        status.addPermanentWidget(self.api_label)

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
        self.add_model_action = action("&Add a GGUF file...", self.choose_model_file, "Ctrl+O")
        self.export_md_action = action("Export as &Markdown...", self.export_markdown)
        self.export_json_action = action("Export as &JSON...", self.export_json)
        self.models_action = action("Browse and download &models...", self.open_models, "Ctrl+M")
        self.settings_action = action("&Settings...", self.open_settings, "Ctrl+,")
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
        session.remote_changed.connect(self.model_picker.set_remote)
        session.remote_changed.connect(self._on_remote_changed)
        session.reasoning_appended.connect(self.chat_view.append_reasoning_text)
        session.chat_settings_changed.connect(self.chat_settings_panel.show_settings)
        self.chat_settings_panel.settings_edited.connect(session.set_chat_settings)
        self.settings_button.toggled.connect(self.chat_settings_panel.setVisible)
        session.reasoning_appended.connect(self._on_thinking)
        session.reply_started.connect(self._on_reply_started)
        session.reply_text_appended.connect(self._on_answer_text)
        models.models_changed.connect(self.model_picker.set_models)
        models.model_loading.connect(self.model_picker.set_loading)
        models.model_loading.connect(self._on_model_loading)
        models.model_load_progress.connect(self._on_load_progress)
        models.model_changed.connect(self.model_picker.set_current)
        models.model_changed.connect(self._on_model_changed)
        models.model_missing.connect(self._on_model_missing)
        models.engine_started.connect(self._on_engine_started)
        for source in (conversations, session, models):
            source.notice.connect(self.show_notice)
            source.error.connect(self.show_error)
        self.controllers.remote_engines.changed.connect(self.model_picker.set_engines)

        self.sidebar.new_requested.connect(session.new_conversation)
        self.sidebar.open_requested.connect(session.open_conversation)
        self.sidebar.hit_requested.connect(session.open_message)
        self.chat_view.version_requested.connect(session.show_version)
        self.sidebar.rename_requested.connect(conversations.rename)
        self.sidebar.delete_requested.connect(conversations.delete)
        self.sidebar.settings_requested.connect(self.edit_conversation_settings)
        self.sidebar.search_requested.connect(conversations.search)
        self.chat_view.edit_requested.connect(session.begin_edit)
        self.message_box.send_requested.connect(session.send)
        self.model_picker.model_selected.connect(session.select_model)
        self.model_picker.remote_selected.connect(session.select_remote)
        self.model_picker.add_requested.connect(self.choose_model_file)
        self.empty_state.add_button.clicked.connect(self.choose_model_file)
        self.empty_state.browse_button.clicked.connect(self.open_models)
        self.send_button.clicked.connect(self.on_send_clicked)
        self.regenerate_button.clicked.connect(session.regenerate)

    # --- rendering the controllers' state --------------------------------------------------------

    @Slot()
    def _refresh_controls(self, *_: object) -> None:
        c = self.session
        state = c.state
        self.message_box.send_enabled = c.can_send()
        if state == TurnState.GENERATING:
            self.send_button.setText("Stop")
            self.send_button.setAccessibleName("Stop")
            self.send_button.setToolTip("Stop the reply (Esc)")
            self.send_button.setEnabled(True)
        elif state == TurnState.STOPPING:
            self.send_button.setText("Stopping...")
            self.send_button.setAccessibleName("Stopping")
            self.send_button.setEnabled(False)
        else:
            self.send_button.setText("Send")
            self.send_button.setAccessibleName("Send")
            self.send_button.setToolTip("Send (Enter)")
            self.send_button.setEnabled(c.can_send())
        has_conversation = c.conversation_id is not None
        self.regenerate_button.setEnabled(c.can_send() and has_conversation)
        self.regenerate_action.setEnabled(c.can_send() and has_conversation)
        self.export_md_action.setEnabled(has_conversation)
        self.export_json_action.setEnabled(has_conversation)
        self.rename_action.setEnabled(has_conversation)

    @Slot(str)
    def _on_state_changed(self, state: str) -> None:
        if state == TurnState.STOPPING:
            self.statusBar().showMessage("Stopping...")
        elif state == TurnState.IDLE:
            self.statusBar().clearMessage()
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
            self.message_box.submit()

    @Slot()
    def on_escape(self) -> None:
        if self.session.editing is not None:
            self.session.cancel_edit()
        else:
            self.session.stop()

    @Slot(object)
    def _on_message_added(self, message: object) -> None:
        if getattr(message, "role", None) == "user":
            self.message_box.clear()  # stored: only now is the typed text safe to drop

    @Slot(int, str)
    def _on_edit_started(self, _message_id: int, text: str) -> None:
        self.message_box.set_text(text)
        self.edit_label.show()

    @Slot()
    def _on_edit_cancelled(self) -> None:
        if self.edit_label.isVisible():
            self.message_box.clear()
        self.edit_label.hide()

    @Slot(str)
    def _on_model_loading(self, name: str) -> None:
        if self.session.remote is not None:
            self._refresh_controls()  # a model loads here for later; this chat is elsewhere
            return
        self.model_label.setText(f"Loading {name}..." if name else "Looking for a model...")
        self.progress.setValue(0)
        self.progress.setVisible(bool(name))
        self.chat_progress.setFormat(f"Loading {name}... %p%" if name else "Looking for a model...")
        self.chat_progress.setValue(0)
        self.chat_progress.show()
        self._refresh_controls()

    @Slot(float)
    def _on_load_progress(self, fraction: float) -> None:
        self.progress.setValue(round(fraction * 100))
        self.chat_progress.setValue(round(fraction * 100))

    @Slot(object)
    def _on_reply_started(self, _message: object) -> None:
        self._thought_chars = 0

    @Slot(str)
    def _on_answer_text(self, _text: str) -> None:
        if self._thought_chars and self.statusBar().currentMessage().startswith("Thinking"):
            self.statusBar().clearMessage()  # the answer has begun

    @Slot(str)
    def _on_thinking(self, thought: str) -> None:
        self._thought_chars += len(thought)
        self.statusBar().showMessage(
            f"Thinking... ({self._thought_chars:,} characters of reasoning so far)"
        )

    @Slot(object)
    def _on_remote_changed(self, choice: ModelChoice | None) -> None:
        """The chat's replies come from a remote engine (a ModelChoice), or from here (None)."""
        if choice is None:
            self.remote_mark.hide()
            self._on_model_changed(self.models.loaded)
            return
        engine = self.controllers.remote_engines.engine(choice.engine or "")
        where = engine.url if engine is not None else "a remote engine"
        self.remote_mark.setText(
            f"↗ Leaves this machine: this chat's messages go to {choice.engine} ({where}), "
            f"which writes the replies with {choice.model}."
        )
        self.remote_mark.setToolTip(
            "Remote engines are added in Settings; “Local only” there hides and refuses them. "
            "The history stays on this computer."
        )
        self.remote_mark.show()
        self.model_label.setText(choice.label)
        self.model_label.setToolTip(where)
        self.backend_label.setText("remote")
        self.backend_label.setToolTip(where)
        self._hide_progress()
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
        self._hide_progress()
        if loaded is None:
            self.model_label.setText("No model")
            self.backend_label.clear()
        else:
            quant = loaded.quantization
            name = loaded.path.name.removesuffix(".gguf")
            self.model_label.setText(f"{name} ({quant})" if quant else name)
            self.model_label.setToolTip(str(loaded.path))
            self.backend_label.setText(
                f"{loaded.backend}: {loaded.backend_note}"
                if loaded.backend_note
                else loaded.backend
            )
            tip = loaded.backend_note or loaded.backend
            if loaded.safe_mode_note:
                tip += "\n" + loaded.safe_mode_note
                self.backend_label.setText(self.backend_label.text() + " (safe mode)")
            self.backend_label.setToolTip(tip)
            self.context_label.setText(f"context 0 / {loaded.n_ctx}")
            self.stack.setCurrentWidget(self.chat_view)
        self._refresh_controls()

    def _hide_progress(self) -> None:
        self.progress.hide()
        self.chat_progress.hide()

    def _clear_model_note(self, note: str | None) -> None:
        """A note about the previous model's chat template is not about this one: drop it."""
        old = self._model_note
        if old and old != note:
            if self.notice_label.text() == old:
                self.notice_label.hide()
                self.notice_label.clear()
            if self.statusBar().currentMessage() == old:
                self.statusBar().clearMessage()
        self._model_note = note

    @Slot(str)
    def _on_model_missing(self, text: str) -> None:
        self._clear_model_note(None)
        self.empty_state.set_help(text)
        if self.session.remote is not None:
            return  # this chat runs on a remote engine: no local model is needed for it
        self.stack.setCurrentWidget(self.empty_state)
        self._hide_progress()
        self.model_label.setText("No model")
        self._refresh_controls()

    @Slot(object)
    def _on_stats(self, completion: Completion) -> None:
        self.speed_label.setText(f"{completion.tokens_per_s:.1f} tok/s")
        self.ttft_label.setText(f"first token {completion.ttft_s:.2f} s")
        loaded = self.models.loaded
        if self.session.remote is not None or loaded is None:
            self.context_label.setText(f"context {completion.context_tokens}")
        else:
            self.context_label.setText(f"context {completion.context_tokens} / {loaded.n_ctx}")

    @Slot(str)
    def _on_engine_started(self, _url: str) -> None:
        url = self.models.local_api_url
        self.api_label.setVisible(url is not None)
        if url is not None:
            self.api_label.setText("Local API on")
            self.api_label.setToolTip(f"Other apps on this computer can use {url} with the key.")

    @Slot(str)
    def show_notice(self, text: str) -> None:
        self.notice_label.setText(text)
        self.notice_label.show()
        self.statusBar().showMessage(text, 10_000)

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

    # --- dialogs ---------------------------------------------------------------------------

    @Slot()
    def choose_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Add a GGUF file", str(Path.home()), "GGUF models (*.gguf);;All files (*)"
        )
        if path:
            self.models.import_model(path)

    def _export(self, fmt: ExportFormat) -> None:
        conversation_id = self.session.conversation_id
        if conversation_id is None:
            return
        title = self.conversations.title_of(conversation_id)
        safe = "".join(ch if ch.isalnum() or ch in " -_" else "_" for ch in title).strip() or "chat"
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export conversation",
            str(Path.home() / f"{safe}.{fmt}"),
            f"{fmt.label} (*.{fmt})",
        )
        if path:
            self.conversations.export(conversation_id, path, fmt)

    @Slot()
    def export_markdown(self) -> None:
        self._export(ExportFormat.MARKDOWN)

    @Slot()
    def export_json(self) -> None:
        self._export(ExportFormat.JSON)

    @Slot()
    def open_models(self) -> None:
        """The Models page (search, download, installed): one non-modal dialog, kept."""
        if self._models_dialog is None:
            from assistant.ui.models_dialog import ModelsDialog  # built when first opened

            dialog = ModelsDialog(self, settings=self.controllers.settings)
            # The chat lets go of a model before the Models page deletes its file.
            dialog.controller.attach_models(self.models)
            dialog.models_changed.connect(self.models.refresh_models)
            dialog.use_model_requested.connect(self.session.select_model)
            self._models_dialog = dialog
        self._models_dialog.show()
        self._models_dialog.raise_()
        self._models_dialog.activateWindow()

    @Slot()
    def toggle_chat_settings(self) -> None:
        """Show or hide this chat's settings panel (its button shows which)."""
        self.settings_button.toggle()

    @Slot()
    def open_conversation_settings(self) -> None:
        """The open conversation's own settings (for a new chat: kept until it is saved)."""
        self.edit_conversation_settings(self.session.conversation_id)

    @Slot(int)
    def edit_conversation_settings(self, conversation_id: int | None) -> None:
        session = self.session
        title = "New chat"
        if conversation_id is not None:
            title = self.conversations.title_of(conversation_id)
            if not title:
                return  # the error is shown
        dialog = ConversationSettingsDialog(
            title,
            session.system_prompt_of(conversation_id),
            self.controllers.settings.system_prompt,
            self,
        )
        try:
            if dialog.exec():
                session.set_system_prompt(conversation_id, dialog.prompt())
        finally:
            dialog.deleteLater()

    def confirm_delete_all(self) -> None:
        count = self.sidebar.conversation_list.count()
        answer = QMessageBox.question(
            self,
            "Delete all conversations",
            f"Delete all {count} conversations and every message in them? They are wiped from "
            "the database file too. This can't be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.conversations.delete_all()

    @Slot()
    def open_monitor(self) -> None:
        """The engine's live load (charts, requests in flight), in a window of its own."""
        access = self.models.engine_access()
        if access is None:
            self.show_error("The engine has not started yet; try again in a moment.")
            return
        monitor = self.monitor
        # A new one after a close (its sampler stopped) or an engine restart (new URL or key).
        if monitor is None or not monitor.sampling or (monitor.url, monitor.key) != access:
            if self.monitor is not None:
                self.monitor.shutdown()
                self.monitor.deleteLater()
            monitor = self.monitor = MonitorView(*access, parent=self)
        monitor.show()
        monitor.raise_()
        monitor.activateWindow()

    @Slot()
    def open_settings(self) -> None:
        dialog = SettingsDialog(self.controllers.settings, self)
        if dialog.exec():
            self.models.update_settings(dialog.result_settings())

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
        if self._models_dialog is not None:
            self._models_dialog.shutdown()  # pauses downloads; partial files are kept
        if self.monitor is not None:
            self.monitor.shutdown()
        self.controllers.shutdown()
        event.accept()
