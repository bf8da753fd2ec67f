"""Which model the conversation uses: installed GGUF files, and adding one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QWidget

_PATH = Qt.ItemDataRole.UserRole


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB") else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def describe_model(model: Any) -> str:
    parts = [model.name.removesuffix(".gguf")]
    if model.quantization:
        parts.append(model.quantization)
    parts.append(human_size(model.size))
    return " · ".join(parts)


class ModelPicker(QWidget):
    """Signals:
    model_selected(str): the user picked the model at this path.
    add_requested(): the user wants to add a GGUF file.
    """

    model_selected = Signal(str)
    add_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.label = QLabel("Model:")
        self.combo = QComboBox()
        self.combo.setAccessibleName("Model")
        self.combo.setToolTip("The model this conversation uses")
        self.combo.setMinimumContentsLength(28)
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.activated.connect(self._on_activated)
        self.label.setBuddy(self.combo)
        self.add_button = QPushButton("Add a GGUF file...")
        self.add_button.setAccessibleName("Add a GGUF file")
        self.add_button.setToolTip("Import a GGUF model file (or drop one onto the window)")
        self.add_button.clicked.connect(self.add_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.add_button)
        self._current: str | None = None

    @Slot(list)
    def set_models(self, models: list) -> None:
        self.combo.blockSignals(True)
        try:
            self.combo.clear()
            for model in models:
                self.combo.addItem(describe_model(model), str(model.path))
                self.combo.setItemData(
                    self.combo.count() - 1, str(model.path), Qt.ItemDataRole.ToolTipRole
                )
            if not models:
                self.combo.addItem("No models installed", None)
            self._select(self._current)
        finally:
            self.combo.blockSignals(False)

    @Slot(object)
    def set_current(self, loaded: Any) -> None:
        """Show the active model (a LoadedModel, or None)."""
        self._current = str(loaded.path) if loaded is not None else None
        self.combo.setEnabled(True)
        self._select(self._current)

    @Slot(str)
    def set_loading(self, name: str) -> None:
        self.combo.setEnabled(False)
        self.combo.setToolTip(f"Loading {name}..." if name else "Finding a model...")

    def _select(self, path: str | None) -> None:
        if path is None:
            return
        index = self.combo.findData(path)
        if index < 0:
            # Loaded from outside the models folder: list it anyway.
            self.combo.addItem(Path(path).name, path)
            index = self.combo.count() - 1
        self.combo.setCurrentIndex(index)
        self.combo.setToolTip(path)

    def paths(self) -> list[str]:
        return [self.combo.itemData(i) for i in range(self.combo.count()) if self.combo.itemData(i)]

    @Slot(int)
    def _on_activated(self, index: int) -> None:
        path = self.combo.itemData(index)
        if path and path != self._current:
            self.model_selected.emit(path)
