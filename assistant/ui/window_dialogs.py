"""The windows and dialogs the main window opens: adding a GGUF file, exporting a chat, the
Models page and the Monitor (each one window, kept between openings), a conversation's own
settings, Settings, and the question before deleting every conversation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from assistant.conversations.export import ExportFormat
from assistant.ui.controllers import Controllers
from assistant.ui.conversation_dialog import ConversationSettingsDialog
from assistant.ui.monitor_view import MonitorView
from assistant.ui.settings_dialog import SettingsDialog

if TYPE_CHECKING:
    from assistant.ui.documents_dialog import DocumentsDialog
    from assistant.ui.models_dialog import ModelsDialog


class WindowDialogs(QObject):
    """Opens them over ``window``; asks the controllers to act on what the person chose."""

    def __init__(self, window: QWidget, controllers: Controllers):
        super().__init__(window)
        self._window = window
        self._controllers = controllers
        self.models_dialog: ModelsDialog | None = None
        self.monitor: MonitorView | None = None
        self.documents_dialog: DocumentsDialog | None = None
        self.tool_dialog: QWidget | None = None  # the open question before a tool call

    @Slot()
    def open_documents(self) -> None:
        """The Documents window (one, kept between openings)."""
        if self.documents_dialog is None:
            from assistant.ui.documents_dialog import DocumentsDialog

            self.documents_dialog = DocumentsDialog(self._controllers.documents, self._window)
            self.documents_dialog.collection_chosen.connect(self._use_collection)
        self.documents_dialog.show()
        self.documents_dialog.raise_()
        self.documents_dialog.activateWindow()

    @Slot(str)
    def _use_collection(self, name: str) -> None:
        session = self._controllers.session
        chosen = session.chat_settings.documents
        if name not in chosen:
            session.set_chat_documents((*chosen, name))

    @Slot(dict)
    def ask_tool_approval(self, call: dict) -> None:
        """A tool call the reply wants to make: asked, not blocking the window."""
        from assistant.ui.tool_approval import ToolApprovalDialog

        dialog = ToolApprovalDialog(call, self._window)
        self.tool_dialog = dialog
        dialog.answered.connect(self._controllers.session.answer_tool)
        dialog.open()

    @Slot()
    def choose_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self._window,
            "Add a GGUF file",
            str(Path.home()),
            "GGUF models (*.gguf);;All files (*)",
        )
        if path:
            self._controllers.models.import_model(path)

    def export(self, fmt: ExportFormat) -> None:
        """The open conversation, to a file the person names."""
        conversation_id = self._controllers.session.conversation_id
        if conversation_id is None:
            return
        conversations = self._controllers.conversations
        title = conversations.title_of(conversation_id)
        safe = "".join(ch if ch.isalnum() or ch in " -_" else "_" for ch in title).strip() or "chat"
        path, _ = QFileDialog.getSaveFileName(
            self._window,
            "Export conversation",
            str(Path.home() / f"{safe}.{fmt}"),
            f"{fmt.label} (*.{fmt})",
        )
        if path:
            conversations.export(conversation_id, path, fmt)

    @Slot()
    def export_markdown(self) -> None:
        self.export(ExportFormat.MARKDOWN)

    @Slot()
    def export_json(self) -> None:
        self.export(ExportFormat.JSON)

    @Slot()
    def open_models(self) -> None:
        """The Models page (search, download, installed): one non-modal dialog, kept."""
        if self.models_dialog is None:
            from assistant.ui.models_dialog import ModelsDialog  # built when first opened

            models = self._controllers.models
            dialog = ModelsDialog(self._window, settings=self._controllers.settings)
            # The chat lets go of a model before the Models page deletes its file.
            dialog.controller.attach_models(models)
            dialog.models_changed.connect(models.refresh_models)
            dialog.use_model_requested.connect(self._controllers.session.select_model)
            self.models_dialog = dialog
        self.models_dialog.show()
        self.models_dialog.raise_()
        self.models_dialog.activateWindow()

    @Slot(int)
    def edit_conversation_settings(self, conversation_id: int | None) -> None:
        """A conversation's own settings (for a new chat: kept until it is saved)."""
        session = self._controllers.session
        title = "New chat"
        if conversation_id is not None:
            title = self._controllers.conversations.title_of(conversation_id)
            if not title:
                return  # the error is shown
        dialog = ConversationSettingsDialog(
            title,
            session.system_prompt_of(conversation_id),
            self._controllers.settings.system_prompt,
            self._window,
        )
        try:
            if dialog.exec():
                session.set_system_prompt(conversation_id, dialog.prompt())
        finally:
            dialog.deleteLater()

    def confirm_delete_all(self, count: int) -> None:
        answer = QMessageBox.question(
            self._window,
            "Delete all conversations",
            f"Delete all {count} conversations and every message in them? They are wiped from "
            "the database file too. This can't be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self._controllers.conversations.delete_all()

    def open_monitor(self) -> bool:
        """The engine's live load (charts, requests in flight), in a window of its own; False
        while the engine has not started."""
        access = self._controllers.models.engine_access()
        if access is None:
            return False
        monitor = self.monitor
        # A new one after a close (its sampler stopped) or an engine restart (new URL or key).
        if monitor is None or not monitor.sampling or (monitor.url, monitor.key) != access:
            if self.monitor is not None:
                self.monitor.shutdown()
                self.monitor.deleteLater()
            monitor = self.monitor = MonitorView(*access, parent=self._window)
        monitor.show()
        monitor.raise_()
        monitor.activateWindow()
        return True

    @Slot()
    def open_settings(self) -> None:
        dialog = SettingsDialog(self._controllers.settings, self._window)
        if dialog.exec():
            self._controllers.models.update_settings(dialog.result_settings())
            self._window.header.set_tool_servers(  # type: ignore[attr-defined]
                list(self._controllers.settings.mcp_servers)
            )

    def shutdown(self) -> None:
        if self.models_dialog is not None:
            self.models_dialog.shutdown()  # pauses downloads; partial files are kept
        if self.monitor is not None:
            self.monitor.shutdown()
