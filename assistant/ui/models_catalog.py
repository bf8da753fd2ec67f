"""The Catalog tab of the Models page: curated models (offline), their variants and fit.

A view only: it shows the catalog's entries, asks ModelsController for fit estimates of the
chosen one, and emits ``download_requested`` for the variant the user picks.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QSplitter, QVBoxLayout, QWidget

from assistant.models.fit_report import FitReport
from assistant.models.hub import ModelVariant
from assistant.ui.models_controller import ModelsController
from assistant.ui.models_widgets import TokenPrompt, VariantTable, gated_text, selectable_label

_DATA = Qt.ItemDataRole.UserRole


class CatalogTab(QWidget):
    """Curated models (offline): pick one to see its quantizations and whether they fit."""

    def __init__(self, controller: ModelsController, parent: QWidget | None = None):
        super().__init__(parent)
        from assistant.models import catalog

        self._controller = controller
        self.entries = catalog.entries()
        self.list = QListWidget()
        self.list.setAccessibleName("Curated models")
        for entry in self.entries:
            item = QListWidgetItem(
                f"{entry.name}  ({entry.params})" if entry.params else entry.name
            )
            item.setData(_DATA, entry.repo)
            item.setToolTip(entry.description)
            self.list.addItem(item)
        self.list.currentRowChanged.connect(self._on_row_changed)
        self.details = selectable_label(name="Model description")
        self.gated = TokenPrompt()
        self.gated.token_entered.connect(controller.save_token)
        controller.token_saved.connect(self.gated.hide)
        self.variants = VariantTable()
        self.variants.download_requested.connect(self.download_requested)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.details)
        right_layout.addWidget(self.gated)
        right_layout.addWidget(self.variants, 1)
        splitter = QSplitter()
        splitter.addWidget(self.list)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        controller.fits_estimated.connect(self._on_fits)
        self._repo: str | None = None

    download_requested = Signal(ModelVariant)

    @Slot(int)
    def _on_row_changed(self, row: int) -> None:
        if not 0 <= row < len(self.entries):
            return
        entry = self.entries[row]
        self._repo = entry.repo
        self.details.setText(
            f"<b>{entry.name}</b> — {entry.repo}<br>{entry.description}<br>"
            f"License: {entry.license} · Context length: {entry.context_length:,} tokens"
            + (f" · {entry.params} parameters" if entry.params else "")
        )
        if entry.gated and not self._controller.has_token():
            self.gated.ask(gated_text(entry.repo))
        else:
            self.gated.hide()
        self.variants.set_variants(entry.variants)
        self._controller.estimate_catalog(entry)

    @Slot(object)
    def _on_fits(self, report: FitReport) -> None:
        if report.repo == self._repo:
            self.variants.set_report(report)
