"""The Models page: curated catalog, Hub search, download queue and installed models, as tabs.

Views only: every long operation goes through ModelsController, which runs it off the GUI thread.

Over 400 lines: four tabs of one page (catalog, search, downloads' host, installed), layout and
wiring only.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from assistant.hub import ModelVariant, RepoView
from assistant.library import LocalModel
from assistant.settings import Settings
from assistant.sizes import human_size
from assistant.ui.models_controller import FitReport, ModelsController
from assistant.ui.models_downloads import DownloadsTab
from assistant.ui.models_widgets import TokenPrompt, VariantTable

_DATA = Qt.ItemDataRole.UserRole
SORTS = (("Most downloaded", "downloads"), ("Most liked", "likes"), ("Recently updated", "recency"))


def gated_text(repo: str) -> str:
    return (
        f"{repo} is gated: accept its license on its page at huggingface.co, then add a "
        "Hugging Face token to download it."
    )


def _label(text: str = "", name: str | None = None) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if name:
        label.setAccessibleName(name)
    return label


class CatalogTab(QWidget):
    """Curated models (offline): pick one to see its quantizations and whether they fit."""

    def __init__(self, controller: ModelsController, parent: QWidget | None = None):
        super().__init__(parent)
        from assistant import catalog

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
        self.details = _label(name="Model description")
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
        self.status = _label(name="Search status")
        self.results = QListWidget()
        self.results.setAccessibleName("Search results")
        self.results.itemActivated.connect(self._open_item)
        self.open_button = QPushButton("Open")
        self.open_button.setAccessibleName("Open repository")
        self.open_button.setToolTip("List the repository's GGUF files")
        self.open_button.clicked.connect(self.open_selected)
        self.repo_label = _label(name="Repository")
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
        self.status = _label(name="Installed models status")
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


class ModelsDialog(QDialog):
    """The Models page. Non-modal; keep one and show() it again: downloads live in the controller.

    Signals (forwarded from the controller, so they fire while the dialog is hidden too):
        model_installed(str): a download finished; the path of the model file.
        models_changed(): installed models changed (downloaded or deleted): refresh the picker.
        use_model_requested(str): the user asked to chat with the model at this path.
    """

    model_installed = Signal(str)
    models_changed = Signal()
    use_model_requested = Signal(str)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        controller: ModelsController | None = None,
        settings: Settings | None = None,
    ):
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setAccessibleName("Models")
        self.resize(960, 640)
        if controller is None:
            controller = ModelsController(settings, parent=self)
        self.controller = controller
        c = self.controller
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Models pages")
        self.catalog_tab = CatalogTab(c)
        self.search_tab = SearchTab(c)
        self.downloads_tab = DownloadsTab(c)
        self.installed_tab = InstalledTab(c)
        self.tabs.addTab(self.catalog_tab, "&Catalog")
        self.tabs.addTab(self.search_tab, "&Search")
        self.tabs.addTab(self.downloads_tab, "&Downloads")
        self.tabs.addTab(self.installed_tab, "&Installed")
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        for tab in (self.catalog_tab, self.search_tab):
            tab.download_requested.connect(self.download)
        c.model_installed.connect(self.model_installed)
        c.models_changed.connect(self.models_changed)
        c.use_model_requested.connect(self.use_model_requested)
        if self.catalog_tab.entries:
            self.catalog_tab.list.setCurrentRow(0)

    @Slot(object)
    def download(self, variant: ModelVariant) -> None:
        self.controller.download(variant)
        self.tabs.setCurrentWidget(self.downloads_tab)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        # Cheap, off the GUI thread: files may have changed while the page was hidden.
        self.controller.refresh_installed()
        self.controller.refresh_pending()

    def shutdown(self) -> None:
        """Pause running downloads (partials are kept) and stop the download thread."""
        self.controller.shutdown()
