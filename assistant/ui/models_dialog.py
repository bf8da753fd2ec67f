"""The Models page: curated catalog, Hub search, download queue and installed models, as tabs.

Views only: every long operation goes through ModelsController, which runs it off the GUI thread.
Each tab lives in its own module (models_catalog, models_search, models_downloads,
models_installed); this one holds the dialog that puts them together and wires them up.
"""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QDialog, QTabWidget, QVBoxLayout, QWidget

from assistant.models.hub import ModelVariant
from assistant.settings import Settings
from assistant.ui.models_catalog import CatalogTab
from assistant.ui.models_controller import ModelsController
from assistant.ui.models_downloads import DownloadsTab
from assistant.ui.models_installed import InstalledTab
from assistant.ui.models_search import SearchTab


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
