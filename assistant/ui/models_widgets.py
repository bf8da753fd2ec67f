"""Pieces the Models page's tabs share: a variant table with fit labels, a token prompt, formats,
the gated-repo sentence and a selectable label."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from assistant.models.hub import ModelVariant
from assistant.sizes import human_size

if TYPE_CHECKING:
    from assistant.models.fit import FitEstimate
    from assistant.models.fit_report import FitReport

ESTIMATING = "estimating..."
RECOMMENDED = "Recommended"


def size_text(size: int | None, *, approx: bool = False) -> str:
    if size is None:
        return "size unknown"
    return ("about " if approx else "") + human_size(size)


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "time left unknown"
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s left"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s left"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min left"


def fit_details(estimate: FitEstimate, n_ctx: int) -> str:
    """The numbers behind a fit label, for a tooltip and the details pane."""
    lines = [
        f"{estimate.label}",
        f"Weights: {human_size(estimate.weights_bytes)}",
        f"KV cache ({n_ctx:,}-token context): {human_size(estimate.kv_cache_bytes)}",
        f"Overhead (compute and output buffers): {human_size(estimate.overhead_bytes)}",
        f"Total: {human_size(estimate.total_bytes)}",
    ]
    if estimate.gpu_bytes:
        lines.append(
            f"On the GPU: {estimate.n_gpu_layers} of {estimate.n_layers} layers, "
            f"{human_size(estimate.gpu_bytes)}; in RAM: {human_size(estimate.cpu_bytes)}"
        )
    lines.append(estimate.detail)
    return "\n".join(lines)


class VariantTable(QWidget):
    """A repo's variants: quantization, size, fit label (numbers in a tooltip and below), Download.

    Signals:
        download_requested(object): the user wants this ModelVariant.
    """

    download_requested = Signal(ModelVariant)

    COLUMNS = ("Quantization", "Size", "Fit", "")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setAccessibleName("Quantizations")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.currentCellChanged.connect(self._on_current_changed)
        self.details = QLabel()
        self.details.setAccessibleName("Fit details")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        self._variants: list[ModelVariant] = []
        self._details: dict[str, str] = {}
        self.buttons: dict[str, QPushButton] = {}  # by quantization

    def set_variants(self, variants: list[ModelVariant] | tuple[ModelVariant, ...]) -> None:
        self._variants = list(variants)
        self._details.clear()
        self.buttons.clear()
        self.table.setRowCount(0)
        self.table.setRowCount(len(self._variants))
        for row, v in enumerate(self._variants):
            quant = QTableWidgetItem(v.quantization)
            quant.setToolTip("\n".join(v.filenames))
            size = size_text(v.size, approx=v.approx)
            if v.is_split:
                size += f" ({v.split_parts} files)"
            self.table.setItem(row, 0, quant)
            self.table.setItem(row, 1, QTableWidgetItem(size))
            self.table.setItem(row, 2, QTableWidgetItem(ESTIMATING))
            button = QPushButton("Download")
            button.setAccessibleName(f"Download {v.quantization}")
            button.setToolTip(f"Download {v.filename}")
            button.clicked.connect(lambda _=False, v=v: self.download_requested.emit(v))
            self.table.setCellWidget(row, 3, button)
            self.buttons[v.quantization] = button
        self.details.setText("")
        if self._variants:
            self.table.selectRow(0)

    def set_report(self, report: FitReport) -> None:
        """Fill the Fit column from a FitReport (or show why there is no estimate)."""
        for row, v in enumerate(self._variants):
            item = self._cell(row, 2)
            estimate = report.estimates.get(v.filename) if report.error is None else None
            if estimate is None:
                item.setText("unknown")
                why = report.error or "The size of this variant is unknown."
                item.setToolTip(why)
                self._details[v.filename] = f"No estimate: {why}"
            else:
                text = fit_details(estimate, report.n_ctx)
                item.setText(estimate.label)
                item.setToolTip(text)
                self._details[v.filename] = text
            quant = self._cell(row, 0)
            font = quant.font()
            if v.filename == report.recommended:
                quant.setText(f"{v.quantization} ({RECOMMENDED})")
                quant.setToolTip(
                    "The best quality that fits this computer.\n" + "\n".join(v.filenames)
                )
                font.setBold(True)
            else:
                quant.setText(v.quantization)
                font.setBold(False)
            quant.setFont(font)
        self._on_current_changed(self.table.currentRow(), 0, -1, -1)

    def _cell(self, row: int, column: int) -> QTableWidgetItem:
        item = self.table.item(row, column)
        assert item is not None, "every cell is filled in when the variants are shown"
        return item

    def fit_label(self, quantization: str) -> str:
        row = self._row(quantization)
        return self._cell(row, 2).text() if row is not None else ""

    def fit_tooltip(self, quantization: str) -> str:
        row = self._row(quantization)
        return self._cell(row, 2).toolTip() if row is not None else ""

    def quantization_text(self, quantization: str) -> str:
        row = self._row(quantization)
        return self._cell(row, 0).text() if row is not None else ""

    def size_text(self, quantization: str) -> str:
        row = self._row(quantization)
        return self._cell(row, 1).text() if row is not None else ""

    def variants(self) -> list[ModelVariant]:
        return list(self._variants)

    def _row(self, quantization: str) -> int | None:
        for row, v in enumerate(self._variants):
            if v.quantization == quantization:
                return row
        return None

    @Slot(int, int, int, int)
    def _on_current_changed(self, row: int, _col: int, _prev_row: int, _prev_col: int) -> None:
        if 0 <= row < len(self._variants):
            v = self._variants[row]
            self.details.setText(
                self._details.get(v.filename, f"{v.quantization}: estimating fit...")
            )


class TokenPrompt(QFrame):
    """Why a repo needs a Hugging Face token, and a field to enter one.

    Signals:
        token_entered(str): the user saved this token.
    """

    token_entered = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName("Hugging Face token needed")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setOpenExternalLinks(True)
        self.message.setTextFormat(Qt.TextFormat.RichText)
        self.field = QLineEdit()
        self.field.setAccessibleName("Hugging Face token")
        self.field.setPlaceholderText("hf_...")
        self.field.setEchoMode(QLineEdit.EchoMode.Password)
        self.field.returnPressed.connect(self._save)
        self.save_button = QPushButton("Save token")
        self.save_button.setAccessibleName("Save Hugging Face token")
        self.save_button.clicked.connect(self._save)
        row = QHBoxLayout()
        row.addWidget(QLabel("Token:"))
        row.addWidget(self.field, 1)
        row.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addLayout(row)
        self.hide()

    def ask(self, text: str) -> None:
        self.message.setText(
            f"{_escape(text)}<br>Create a read token at "
            '<a href="https://huggingface.co/settings/tokens">huggingface.co/settings/tokens</a> '
            "and paste it here; it is saved in Assistant's settings."
        )
        self.show()

    def text(self) -> str:
        return self.message.text()

    @Slot()
    def _save(self) -> None:
        token = self.field.text().strip()
        if token:
            self.field.clear()
            self.token_entered.emit(token)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def gated_text(repo: str) -> str:
    return (
        f"{repo} is gated: accept its license on its page at huggingface.co, then add a "
        "Hugging Face token to download it."
    )


def selectable_label(text: str = "", name: str | None = None) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if name:
        label.setAccessibleName(name)
    return label
