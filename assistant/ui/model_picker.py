"""Which model the conversation uses: installed GGUF files, adding one, and the models of the
remote engines under each engine's name (marked as leaving this machine)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QWidget

from assistant.chat.turn import ModelChoice
from assistant.clients.remote import EngineStatus
from assistant.models.library import LocalModel
from assistant.records import LoadedModel
from assistant.sizes import human_size

_PATH = Qt.ItemDataRole.UserRole
# A remote model's item holds its ModelChoice here (and no path).
_REMOTE = Qt.ItemDataRole.UserRole + 1
LEAVES_MACHINE = "leaves this machine"


def describe_model(model: LocalModel) -> str:
    parts = [model.name.removesuffix(".gguf")]
    if model.quantization:
        parts.append(model.quantization)
    parts.append(human_size(model.size))
    return " · ".join(parts)


class ModelPicker(QWidget):
    """Signals:
    model_selected(str): the user picked the model at this path.
    remote_selected(str, str): the user picked this model (2nd) of this remote engine (1st).
    add_requested(): the user wants to add a GGUF file.
    """

    model_selected = Signal(str)
    remote_selected = Signal(str, str)
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
        self._remote: ModelChoice | None = None
        self._models: list = []
        self._engines: list[EngineStatus] = []

    @Slot(list)
    def set_models(self, models: list) -> None:
        self._models = list(models)
        self._rebuild()

    @Slot(list)
    def set_engines(self, statuses: list[EngineStatus]) -> None:
        """The remote engines and their models (an unavailable one shows why)."""
        self._engines = list(statuses)
        self._rebuild()

    def _rebuild(self) -> None:
        self.combo.blockSignals(True)
        try:
            self.combo.clear()
            for model in self._models:
                self.combo.addItem(describe_model(model), str(model.path))
                self.combo.setItemData(
                    self.combo.count() - 1, str(model.path), Qt.ItemDataRole.ToolTipRole
                )
            if not self._models:
                self.combo.addItem("No models installed", None)
            for status in self._engines:
                self._add_engine(status)
            if self._remote is not None:
                self._select_remote(self._remote)
            else:
                self._select(self._current)
        finally:
            self.combo.blockSignals(False)

    def _add_engine(self, status: EngineStatus) -> None:
        engine = status.engine
        self.combo.insertSeparator(self.combo.count())
        if status.reachable:
            header = f"{engine.name} · {LEAVES_MACHINE}"
        else:
            header = f"{engine.name} · unavailable"
        self._add_header(header, status.problem or f"{engine.url}: your messages go there")
        for model in status.models:
            self._add_remote_item(ModelChoice(model, engine=engine.name), engine.url)

    def _add_header(self, text: str, tip: str) -> None:
        self.combo.addItem(text, None)
        index = self.combo.count() - 1
        self.combo.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)
        item_model = self.combo.model()
        if isinstance(item_model, QStandardItemModel):
            item = item_model.item(index)
            item.setEnabled(False)

    def _add_remote_item(self, choice: ModelChoice, url: str) -> int:
        self.combo.addItem(f"{choice.label}  ↗", None)
        index = self.combo.count() - 1
        self.combo.setItemData(index, choice, _REMOTE)
        self.combo.setItemData(
            index,
            f"Runs on {choice.engine} ({url}): this chat's messages leave this machine.",
            Qt.ItemDataRole.ToolTipRole,
        )
        return index

    @Slot(object)
    def set_current(self, loaded: LoadedModel | None) -> None:
        """Show the active model (a LoadedModel, or None)."""
        self._current = str(loaded.path) if loaded is not None else None
        self.combo.setEnabled(True)
        if self._remote is None:
            self._select(self._current)

    @Slot(object)
    def set_remote(self, choice: ModelChoice | None) -> None:
        """Show the remote model the chat uses, or (None) the model loaded here again."""
        self._remote = choice
        self.combo.setEnabled(True)
        self._rebuild()  # drops the entry of a remote model no engine lists

    def _select_remote(self, choice: ModelChoice) -> None:
        index = self.index_of(choice)
        if index < 0:  # its engine does not list it (now): show it anyway
            index = self._add_remote_item(choice, "unavailable now")
        self.combo.setCurrentIndex(index)
        self.combo.setToolTip(self.combo.itemData(index, Qt.ItemDataRole.ToolTipRole))

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

    def remote_choices(self) -> list[ModelChoice]:
        found = (self.combo.itemData(i, _REMOTE) for i in range(self.combo.count()))
        return [c for c in found if isinstance(c, ModelChoice)]

    def index_of(self, choice: ModelChoice) -> int:
        for index in range(self.combo.count()):
            if self.combo.itemData(index, _REMOTE) == choice:
                return index
        return -1

    @Slot(int)
    def _on_activated(self, index: int) -> None:
        choice = self.combo.itemData(index, _REMOTE)
        if isinstance(choice, ModelChoice):
            if choice != self._remote and choice.engine:
                self.remote_selected.emit(choice.engine, choice.model)
            return
        path = self.combo.itemData(index)
        if path and (path != self._current or self._remote is not None):
            self.model_selected.emit(path)
