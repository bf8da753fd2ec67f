"""The Documents window: the person's collections, what each holds and skipped (and why), adding
files and folders, the indexing's progress, updating and removing."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from assistant.documents.index import Collection, DocumentIndex
from assistant.documents.indexer import Progress
from assistant.errors import AssistantError
from assistant.ui.documents_controller import DocumentsController


class DocumentsDialog(QDialog):
    """Signals: collection_chosen(str): "use in this chat" on the selected collection."""

    collection_chosen = Signal(str)

    def __init__(self, controller: DocumentsController, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Documents")
        self.resize(720, 480)
        self.controller = controller
        intro = QLabel(
            "Collections of your files that chats can answer from, with their sources. "
            "Everything stays on this computer: the text and its index are kept in your "
            "data folder, and removing a collection deletes them."
        )
        intro.setWordWrap(True)
        self.list = QListWidget()
        self.list.setAccessibleName("Collections")
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setAccessibleName("Collection details")
        self.new_button = QPushButton("New collection from a folder...")
        self.add_folder_button = QPushButton("Add folder...")
        self.add_files_button = QPushButton("Add files...")
        self.update_button = QPushButton("Update")
        self.update_button.setToolTip("Read changed files again, drop removed ones")
        self.use_button = QPushButton("Use in this chat")
        self.remove_button = QPushButton("Remove...")
        self.progress_label = QLabel()
        self.progress_bar = QProgressBar()
        self.progress_bar.hide()

        buttons = QVBoxLayout()
        for b in (self.new_button, self.add_folder_button, self.add_files_button,
                  self.update_button, self.use_button, self.remove_button):  # fmt: skip
            buttons.addWidget(b)
        buttons.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(self.list, 1)
        top.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(top, 2)
        layout.addWidget(self.details, 1)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.progress_bar)

        self.new_button.clicked.connect(self._new_collection)
        self.add_folder_button.clicked.connect(self._add_folder)
        self.add_files_button.clicked.connect(self._add_files)
        self.update_button.clicked.connect(lambda: self._with_selected(controller.update))
        self.use_button.clicked.connect(lambda: self._with_selected(self.collection_chosen.emit))
        self.remove_button.clicked.connect(self._remove)
        self.list.currentItemChanged.connect(lambda *_: self._show_details())
        controller.collections_changed.connect(self.show_collections)
        controller.progress.connect(self.show_progress)
        controller.indexing_finished.connect(self.show_finished)
        self.show_collections(controller.collections())

    def selected(self) -> str | None:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _with_selected(self, action) -> None:  # noqa: ANN001
        name = self.selected()
        if name:
            action(name)

    @Slot(list)
    def show_collections(self, collections: list[Collection]) -> None:
        chosen = self.selected()
        self.list.clear()
        for c in collections:
            state = f"{c.indexed} files · {c.chunks} passages"
            if c.skipped:
                state += f" · {c.skipped} skipped"
            if c.pending:
                state += f" · {c.pending} to index"
            item = QListWidgetItem(f"{c.name}\n{state}")
            item.setData(Qt.ItemDataRole.UserRole, c.name)
            self.list.addItem(item)
            if c.name == chosen or chosen is None and self.list.count() == 1:
                self.list.setCurrentItem(item)
        has = self.list.count() > 0
        for b in (self.add_folder_button, self.add_files_button, self.update_button,
                  self.use_button, self.remove_button):  # fmt: skip
            b.setEnabled(has)
        if not has:
            self.details.setPlainText(
                "No collections yet. Choose “New collection from a folder...” to add one: "
                "text, Markdown, PDF, Word, HTML and source code are read."
            )
        else:
            self._show_details()

    def _show_details(self) -> None:
        name = self.selected()
        if name is None:
            return
        try:
            with DocumentIndex() as index:
                collection = index.collection(name)
                states = list(index.file_states(collection).values())
        except AssistantError as exc:
            self.details.setPlainText(str(exc))
            return
        lines = ["Added:"] + [f"  {s}" for s in collection.sources]
        lines.append(f"Indexed with {collection.embedding_model}.")
        skipped = [s for s in states if s.status == "skipped"]
        if skipped:
            lines.append(f"Skipped ({len(skipped)}):")
            lines += [f"  {s.path}: {s.reason}" for s in sorted(skipped, key=lambda s: s.path)]
        self.details.setPlainText("\n".join(lines))

    @Slot(object)
    def show_progress(self, p: Progress) -> None:
        self.progress_bar.show()
        self.progress_bar.setMaximum(max(1, p.total))
        self.progress_bar.setValue(p.done)
        name = Path(p.path).name if p.path else ""
        self.progress_label.setText(
            f"Indexing {p.collection}: {p.done} of {p.total} files" + (f" · {name}" if name else "")
        )

    @Slot(object)
    def show_finished(self, p: Progress) -> None:
        self.progress_bar.hide()
        text = f"{p.collection}: up to date, {p.passages} new passages"
        if p.skipped:
            text += f", {len(p.skipped)} files skipped (listed above)"
        if p.removed:
            text += f", {p.removed} removed files dropped"
        if p.stopped:
            text = f"{p.collection}: stopped; it goes on at the next start"
        self.progress_label.setText(text)

    # -- choosing files --------------------------------------------------------------------

    def _new_collection(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of documents")
        if not folder:
            return
        name, ok = QInputDialog.getText(self, "New collection", "Name:", text=Path(folder).name)
        if ok and name.strip():
            self.controller.add(name.strip(), [Path(folder)])

    def _add_folder(self) -> None:
        name = self.selected()
        folder = QFileDialog.getExistingDirectory(self, f"Add a folder to {name}") if name else ""
        if name and folder:
            self.controller.add(name, [Path(folder)])

    def _add_files(self) -> None:
        name = self.selected()
        if not name:
            return
        chosen, _ = QFileDialog.getOpenFileNames(
            self,
            f"Add files to {name}",
            "",
            "Documents (*.txt *.md *.pdf *.docx *.html *.htm *.rst *.py *.js *.ts *.c *.cpp *.h "
            "*.java *.go *.rs *.json *.csv);;All files (*)",
        )
        if chosen:
            self.controller.add(name, [Path(c) for c in chosen])

    def _remove(self) -> None:
        name = self.selected()
        if not name:
            return
        answer = QMessageBox.question(
            self,
            "Remove collection",
            f"Remove “{name}”? Its passages and index are deleted from this computer; your "
            "files themselves are not touched.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.controller.remove(name)
