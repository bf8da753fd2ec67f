"""The Installed tab of the Models page: the models folder's models; use or delete them.

A view only: the list and deletions go through ModelsController (which deletes through the
app's ModelManager, so a model in use is let go of first); the tab asks before deleting.
"""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from assistant.models.library import LocalModel
from assistant.sizes import human_size
from assistant.ui.models_controller import ModelsController
from assistant.ui.models_widgets import selectable_label


class InstalledTab(QWidget):
    """Models in the models folder: size, quantization; use or delete them."""

    COLUMNS = ("Model", "Quantization", "Size", "Architecture")

    def __init__(self, controller: ModelsController, parent: QWidget | None = None):
        super().__init__(parent)
        self._controller = controller
        self._models: list = []
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setAccessibleName("Installed models")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(self.use_selected)
        self.use_button = QPushButton("Use")
        self.use_button.setAccessibleName("Use selected model")
        self.use_button.setToolTip("Chat with this model")
        self.use_button.clicked.connect(self.use_selected)
        self.delete_button = QPushButton("Delete...")
        self.delete_button.setAccessibleName("Delete selected model")
        self.delete_button.clicked.connect(self.delete_selected)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setAccessibleName("Refresh installed models")
        self.refresh_button.clicked.connect(controller.refresh_installed)
        self.status = selectable_label(name="Installed models status")
        buttons = QHBoxLayout()
        buttons.addWidget(self.use_button)
        buttons.addWidget(self.delete_button)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        controller.installed_listed.connect(self._on_listed)
        controller.model_deleted.connect(self._on_deleted)
        controller.delete_failed.connect(self._on_delete_failed)
        controller.error.connect(self.status.setText)

    @Slot(list)
    def _on_listed(self, models: list) -> None:
        self._models = list(models)
        self.table.setRowCount(0)
        self.table.setRowCount(len(self._models))
        for row, m in enumerate(self._models):
            name = QTableWidgetItem(m.display_name + ("  (starter)" if m.is_starter else ""))
            name.setToolTip(str(m.path))
            self.table.setItem(row, 0, name)
            self.table.setItem(row, 1, QTableWidgetItem(m.quantization or "unknown"))
            self.table.setItem(row, 2, QTableWidgetItem(human_size(m.size)))
            self.table.setItem(row, 3, QTableWidgetItem(m.architecture or "unknown"))
        has = bool(self._models)
        self.use_button.setEnabled(has)
        self.delete_button.setEnabled(has)
        if not has:
            self.status.setText("No models installed yet.")

    def names(self) -> list[str]:
        return [m.name for m in self._models]

    def select(self, name: str) -> None:
        if name in self.names():
            self.table.selectRow(self.names().index(name))

    def _selected(self) -> LocalModel | None:
        row = self.table.currentRow()
        return self._models[row] if 0 <= row < len(self._models) else None

    @Slot()
    def use_selected(self) -> None:
        model = self._selected()
        if model is not None:
            self._controller.use_model(str(model.path))

    @Slot()
    def delete_selected(self) -> None:
        model = self._selected()
        if model is None:
            return
        in_use = self._controller.is_in_use(model.name)
        text = (
            f"{model.name} is the model in use. Delete it? Assistant switches to another "
            "installed model first (or, if there is none, leaves no model loaded). "
            if in_use
            else f"Delete {model.name}? "
        )
        answer = QMessageBox.question(
            self,
            "Delete model",
            text + f"This frees {human_size(model.size)} of disk space; "
            "you would have to download it again to use it.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.status.setText(
                f"Switching away from {model.name}, then deleting it..."
                if in_use
                else f"Deleting {model.name}..."
            )
            self._controller.delete_model(model.name)

    @Slot(str, str)
    def _on_delete_failed(self, name: str, message: str) -> None:
        self.status.setText(message)
        QMessageBox.warning(self, "Delete model", f"{name} was not deleted. {message}")

    @Slot(str, int)
    def _on_deleted(self, name: str, freed: int) -> None:
        self.status.setText(f"Deleted {name}; {human_size(freed)} of disk space freed.")
