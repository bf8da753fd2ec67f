"""The Settings section for remote engines: the list, adding one (name, URL, key, CA bundle),
removing one, and the "local only" switch."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from assistant.clients import remote
from assistant.endpoints import RemoteEngine
from assistant.errors import AssistantError
from assistant.settings import Settings


class EnginesEditor(QWidget):
    """Edits a copy of the engines; ``engines()`` and ``local_only()`` give the result."""

    def __init__(self, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self._engines: list[RemoteEngine] = list(settings.engines)

        self.local_only = QCheckBox("Local only: never send anything to a remote engine")
        self.local_only.setAccessibleName("Local only")
        self.local_only.setToolTip(
            "Hides every remote engine from the model picker and refuses them."
        )
        self.local_only.setChecked(settings.local_only)

        self.list = QListWidget()
        self.list.setAccessibleName("Remote engines")
        self.list.setMaximumHeight(90)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setAccessibleName("Remove the engine")
        self.remove_button.clicked.connect(self._remove)

        self.name = QLineEdit()
        self.name.setAccessibleName("Engine name")
        self.name.setPlaceholderText("gpu-box")
        self.url = QLineEdit()
        self.url.setAccessibleName("Engine URL")
        self.url.setPlaceholderText("http://gpu-box:8080/v1")
        self.key = QLineEdit()
        self.key.setAccessibleName("Engine API key")
        self.key.setPlaceholderText("if it asks for one")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.ca_bundle = QLineEdit()
        self.ca_bundle.setAccessibleName("Engine CA bundle")
        self.ca_bundle.setPlaceholderText("for a certificate of its own (optional)")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        self.add_button = QPushButton("Add engine")
        self.add_button.setAccessibleName("Add the engine")
        self.add_button.clicked.connect(self._add)
        self.problem = QLabel()
        self.problem.setAccessibleName("Engine problem")
        self.problem.setWordWrap(True)
        self.problem.hide()

        list_row = QHBoxLayout()
        list_row.addWidget(self.list, 1)
        list_row.addWidget(self.remove_button, 0, Qt.AlignmentFlag.AlignTop)
        bundle_row = QHBoxLayout()
        bundle_row.addWidget(self.ca_bundle, 1)
        bundle_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Name:", self.name)
        form.addRow("URL:", self.url)
        form.addRow("API key:", self.key)
        form.addRow("CA bundle:", bundle_row)
        note = QLabel(
            "llama-server, vLLM, Ollama (…:11434/v1), LM Studio or another Assistant. Their "
            "models appear in the model picker; chats with them leave this machine."
        )
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.local_only)
        layout.addLayout(list_row)
        layout.addWidget(note)
        layout.addLayout(form)
        layout.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignRight)
        layout.addWidget(self.problem)
        self.local_only.toggled.connect(self._update)
        self._fill()

    def engines(self) -> list[RemoteEngine]:
        return list(self._engines)

    def add_typed(self) -> bool:
        """Add the engine typed into the form, if any (OK pressed without "Add engine");
        False, with the reason shown, when it cannot be added."""
        if not self.name.text().strip() and not self.url.text().strip():
            return True
        return self._add()

    def is_local_only(self) -> bool:
        return self.local_only.isChecked()

    def _fill(self) -> None:
        self.list.clear()
        for engine in self._engines:
            item = QListWidgetItem(f"{engine.name}  ·  {engine.url}")
            item.setData(Qt.ItemDataRole.UserRole, engine.name)
            self.list.addItem(item)
        if not self._engines:
            self.list.addItem("(none: chats run on this machine only)")
        self._update()

    def _update(self) -> None:
        self.remove_button.setEnabled(bool(self._engines))
        on = not self.local_only.isChecked()
        for widget in (self.name, self.url, self.key, self.ca_bundle, self.add_button):
            widget.setEnabled(on)

    def _add(self) -> bool:
        scratch = Settings(engines=list(self._engines))
        try:
            remote.add_engine(
                scratch,
                self.name.text(),
                self.url.text(),
                self.key.text() or None,
                self.ca_bundle.text().strip() or None,
            )
        except AssistantError as exc:
            self.problem.setText(str(exc))
            self.problem.show()
            return False
        self._engines = scratch.engines
        self.problem.hide()
        for field in (self.name, self.url, self.key, self.ca_bundle):
            field.clear()
        self._fill()
        return True

    def _remove(self) -> None:
        item = self.list.currentItem()
        if item is None and len(self._engines) == 1:
            item = self.list.item(0)  # the only one: nothing to choose
        name = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if name:
            self._engines = [e for e in self._engines if e.name != name]
            self._fill()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "CA bundle", "", "Certificates (*.pem *.crt *.cer);;All files (*)"
        )
        if path:
            self.ca_bundle.setText(path)
