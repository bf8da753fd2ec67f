"""The Search tab of the Models page: search the Hub for GGUF repos, open one, see its variants.

A view only: searches and repo listings go through ModelsController, which runs them off the
GUI thread; the tab shows results, a repo's facts and variants with fit estimates, and emits
``download_requested`` for the variant the user picks.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from assistant.models.fit_report import FitReport
from assistant.models.hub import ModelVariant, RepoView
from assistant.ui.models_controller import ModelsController
from assistant.ui.models_widgets import TokenPrompt, VariantTable, gated_text, selectable_label

_DATA = Qt.ItemDataRole.UserRole
SORTS = (("Most downloaded", "downloads"), ("Most liked", "likes"), ("Recently updated", "recency"))


class SearchTab(QWidget):
    """Search the Hub for GGUF repos; open one to list its variants with fit estimates."""

    download_requested = Signal(ModelVariant)

    def __init__(self, controller: ModelsController, parent: QWidget | None = None):
        super().__init__(parent)
        self._controller = controller
        self.query = QLineEdit()
        self.query.setAccessibleName("Search Hugging Face")
        self.query.setPlaceholderText("Search GGUF models on Hugging Face, e.g. qwen 7b instruct")
        self.query.returnPressed.connect(self.search)
        self.sort = QComboBox()
        self.sort.setAccessibleName("Sort results by")
        for text, key in SORTS:
            self.sort.addItem(text, key)
        self.search_button = QPushButton("Search")
        self.search_button.setAccessibleName("Search")
        self.search_button.clicked.connect(self.search)
        self.status = selectable_label(name="Search status")
        self.results = QListWidget()
        self.results.setAccessibleName("Search results")
        self.results.itemActivated.connect(self._open_item)
        self.open_button = QPushButton("Open")
        self.open_button.setAccessibleName("Open repository")
        self.open_button.setToolTip("List the repository's GGUF files")
        self.open_button.clicked.connect(self.open_selected)
        self.repo_label = selectable_label(name="Repository")
        self.gated = TokenPrompt()
        self.gated.token_entered.connect(controller.save_token)
        controller.token_saved.connect(self.gated.hide)
        self.variants = VariantTable()
        self.variants.download_requested.connect(self.download_requested)

        top = QHBoxLayout()
        top.addWidget(self.query, 1)
        top.addWidget(self.sort)
        top.addWidget(self.search_button)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.results, 1)
        left_layout.addWidget(self.open_button)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.repo_label)
        right_layout.addWidget(self.gated)
        right_layout.addWidget(self.variants, 1)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(splitter, 1)

        controller.search_started.connect(self._on_search_started)
        controller.search_finished.connect(self._on_results)
        controller.search_failed.connect(self._on_search_failed)
        controller.repo_opening.connect(self._on_repo_opening)
        controller.repo_opened.connect(self._on_repo_opened)
        controller.repo_failed.connect(self._on_repo_failed)
        controller.fits_estimated.connect(self._on_fits)
        controller.token_saved.connect(self._reopen)
        self._repo: str | None = None

    @Slot()
    def _reopen(self) -> None:
        """With a token, a gated repo's header can be read: estimate its fit again."""
        if self._repo and self.variants.variants():
            self._controller.open_repo(self._repo)

    @Slot()
    def search(self) -> None:
        self._controller.search(self.query.text().strip(), self.sort.currentData())

    @Slot()
    def open_selected(self) -> None:
        item = self.results.currentItem()
        if item is not None:
            self._open_item(item)

    @Slot(QListWidgetItem)
    def _open_item(self, item: QListWidgetItem) -> None:
        self._controller.open_repo(item.data(_DATA))

    @Slot(str)
    def _on_search_started(self, query: str) -> None:
        self.search_button.setEnabled(False)
        self.status.setText(f"Searching for “{query}”..." if query else "Searching...")

    @Slot(str, list)
    def _on_results(self, query: str, results: list) -> None:
        self.search_button.setEnabled(True)
        self.results.clear()
        for r in results:
            facts = []
            if r.downloads is not None:
                facts.append(f"{r.downloads:,} downloads")
            if r.likes is not None:
                facts.append(f"{r.likes:,} likes")
            if r.last_modified is not None:
                facts.append(f"updated {r.last_modified:%Y-%m-%d}")
            if r.gated:
                facts.append("gated: needs a token")
            item = QListWidgetItem(f"{r.repo}\n{' · '.join(facts)}")
            item.setData(_DATA, r.repo)
            item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{r.repo}, {', '.join(facts)}")
            self.results.addItem(item)
        self.status.setText(
            f"{len(results)} repositories found."
            if results
            else f"No GGUF models found for “{query}”."
        )
        if results:
            self.results.setCurrentRow(0)

    @Slot(str, str)
    def _on_search_failed(self, _query: str, message: str) -> None:
        self.search_button.setEnabled(True)
        self.status.setText(message)

    @Slot(str)
    def _on_repo_opening(self, repo: str) -> None:
        self._repo = repo
        self.repo_label.setText(f"Loading the file list of {repo}...")
        self.gated.hide()
        self.variants.set_variants([])

    @Slot(object)
    def _on_repo_opened(self, view: RepoView) -> None:
        self._repo = view.repo
        facts = [f"License: {view.license or 'unknown'}"]
        if view.context_length:
            facts.append(f"Context length: {view.context_length:,} tokens")
        if view.architecture:
            facts.append(f"Architecture: {view.architecture}")
        count = len(view.variants)
        facts.append(
            f"{count} quantization{'s' if count != 1 else ''}" if count else "No GGUF model files"
        )
        self.repo_label.setText(f"<b>{view.repo}</b><br>{' · '.join(facts)}")
        if view.gated and not self._controller.has_token():
            self.gated.ask(gated_text(view.repo))
        self.variants.set_variants(view.variants)

    @Slot(str, str)
    def _on_repo_failed(self, repo: str, message: str) -> None:
        self.repo_label.setText(message)

    @Slot(object)
    def _on_fits(self, report: FitReport) -> None:
        if report.repo == self._repo:
            self.variants.set_report(report)
