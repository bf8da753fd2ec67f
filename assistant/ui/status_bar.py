"""The window's status bar: which model runs (here or on a remote engine) and on which backend,
its load progress, how much a reasoning model has thought so far, the last reply's speed, time
to first token and context, and whether the Local API is on. It renders what it is told; the
window decides when."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QWidget

from assistant.records import Completion, LoadedModel


class StatusBar(QStatusBar):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model_label = _label("Model status", "No model")
        self.backend_label = _label("Backend")
        self.speed_label = _label("Speed")
        self.ttft_label = _label("Time to first token")
        self.context_label = _label("Context used")
        self.api_label = _label("Local API")
        self.api_label.hide()
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Model loading progress")
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(160)
        self.progress.hide()
        self._thought_chars = 0  # of the reply streaming now
        self.addWidget(self.model_label)
        self.addWidget(self.progress)
        for label in (
            self.speed_label,
            self.ttft_label,
            self.context_label,
            self.backend_label,
            self.api_label,
        ):
            self.addPermanentWidget(label)

    def show_loading(self, name: str) -> None:
        """A model is loading (``name``), or one is being looked for (empty)."""
        self.model_label.setText(f"Loading {name}..." if name else "Looking for a model...")
        self.progress.setValue(0)
        self.progress.setVisible(bool(name))

    @Slot(object)
    def begin_reply(self, _message: object) -> None:
        self._thought_chars = 0

    @Slot(str)
    def show_thinking(self, thought: str) -> None:
        self._thought_chars += len(thought)
        self.showMessage(f"Thinking... ({self._thought_chars:,} characters of reasoning so far)")

    @Slot(str)
    def show_answer_text(self, _text: str) -> None:
        if self._thought_chars and self.currentMessage().startswith("Thinking"):
            self.clearMessage()  # the answer has begun

    def show_no_model(self) -> None:
        self.model_label.setText("No model")

    def show_model(self, loaded: LoadedModel | None) -> None:
        """The model loaded here, with its backend (and why, and whether in safe mode)."""
        self.progress.hide()
        if loaded is None:
            self.model_label.setText("No model")
            self.backend_label.clear()
            return
        quant = loaded.quantization
        name = loaded.path.name.removesuffix(".gguf")
        self.model_label.setText(f"{name} ({quant})" if quant else name)
        self.model_label.setToolTip(str(loaded.path))
        backend = (
            f"{loaded.backend}: {loaded.backend_note}" if loaded.backend_note else loaded.backend
        )
        tip = loaded.backend_note or loaded.backend
        if loaded.safe_mode_note:
            tip += "\n" + loaded.safe_mode_note
            backend += " (safe mode)"
        self.backend_label.setText(backend)
        self.backend_label.setToolTip(tip)
        self.context_label.setText(f"context 0 / {loaded.n_ctx}")

    def show_remote(self, label: str, where: str) -> None:
        """This chat's replies come from a remote engine at ``where``."""
        self.model_label.setText(label)
        self.model_label.setToolTip(where)
        self.backend_label.setText("remote")
        self.backend_label.setToolTip(where)
        self.progress.hide()

    def show_stats(self, completion: Completion, n_ctx: int | None) -> None:
        """The last reply's figures; ``n_ctx`` is the local model's context (None: remote)."""
        self.speed_label.setText(f"{completion.tokens_per_s:.1f} tok/s")
        self.ttft_label.setText(f"first token {completion.ttft_s:.2f} s")
        used = f"context {completion.context_tokens}"
        self.context_label.setText(used if n_ctx is None else f"{used} / {n_ctx}")

    def show_local_api(self, url: str | None) -> None:
        self.api_label.setVisible(url is not None)
        if url is not None:
            self.api_label.setText("Local API on")
            self.api_label.setToolTip(f"Other apps on this computer can use {url} with the key.")


def _label(name: str, text: str = "") -> QLabel:
    label = QLabel(text)
    label.setAccessibleName(name)
    return label
