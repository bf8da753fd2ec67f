"""The Downloads tab: the queue with progress, speed and ETA; pause, resume, cancel; partials."""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from assistant.models.download_queue import JobState
from assistant.models.hub import ModelVariant
from assistant.models.partials import PendingVariant
from assistant.sizes import human_size
from assistant.ui.models_controller import JobView, ModelsController
from assistant.ui.models_widgets import TokenPrompt, duration_text

PROGRESS_STEPS = 1000  # the bar's range: finer than percent, so small files move it visibly


def variant_title(variant: ModelVariant) -> str:
    name = variant.filename.rsplit("/", 1)[-1]
    parts = f" ({variant.split_parts} files)" if variant.is_split else ""
    return f"{variant.repo} · {variant.quantization} · {name}{parts}"


def job_status(view: JobView) -> str:
    p = view.progress
    if view.state == JobState.QUEUED:
        return "Waiting for the download before it..."
    if view.state == JobState.DOWNLOADING:
        if p is None:
            return "Connecting..."
        if p.status == "checking":
            return f"Checking the {human_size(p.done)} already downloaded..."
        if p.status == "retrying":
            return f"Connection lost at {human_size(p.done)}; retrying..."
        part = f" · part {p.part} of {p.parts}" if p.parts > 1 else ""
        return (
            f"{human_size(p.done)} of {human_size(p.total)} · {human_size(int(p.speed))}/s · "
            f"{duration_text(p.eta)}{part}"
        )
    if view.state == JobState.PAUSED:
        done = f"{human_size(p.done)} of {human_size(p.total)} kept" if p else "partial file kept"
        return f"Paused ({done}). Resume continues where it stopped."
    if view.state == JobState.DONE:
        return f"Installed: {view.path}"
    if view.state == JobState.CANCELLED:
        return "Cancelled; the partial file was deleted."
    if view.state == JobState.FAILED:
        return f"Failed: {view.error}"
    return view.state


class DownloadRow(QFrame):
    """One download in the queue: title, progress bar, status line and its buttons."""

    def __init__(self, controller: ModelsController, view: JobView, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.job_id = view.id
        self.variant = view.variant
        self._controller = controller
        self._path: str | None = None
        title = variant_title(view.variant)
        self.setAccessibleName(f"Download of {title}")
        self.title = QLabel(title)
        self.title.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, PROGRESS_STEPS)
        self.bar.setAccessibleName(f"Progress of {view.variant.quantization}")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Download status")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.pause_button = self._button(
            "Pause",
            "Pause this download (the partial file is kept)",
            lambda: controller.pause(self.job_id),
        )
        self.resume_button = self._button(
            "Resume", "Continue where the download stopped", lambda: controller.resume(self.job_id)
        )
        self.cancel_button = self._button(
            "Cancel", "Stop and delete the partial file", lambda: controller.cancel(self.job_id)
        )
        self.use_button = self._button(
            "Use now",
            "Chat with this model",
            lambda: self._path and controller.use_model(self._path),
        )
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.pause_button, self.resume_button, self.cancel_button, self.use_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.update_view(view)

    def _button(self, text: str, tip: str, slot) -> QPushButton:
        button = QPushButton(text)
        button.setAccessibleName(f"{text} download")
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    def update_view(self, view: JobView) -> None:
        self.state = view.state
        p = view.progress
        if view.state == JobState.DONE:
            self.bar.setValue(PROGRESS_STEPS)
        elif p is not None and p.total:
            self.bar.setValue(int(PROGRESS_STEPS * p.done / p.total))
        if view.state == JobState.CANCELLED:
            self.bar.setValue(0)
        self.status.setText(job_status(view))
        self._path = str(view.path) if view.path else None
        self.pause_button.setVisible(view.state in (JobState.QUEUED, JobState.DOWNLOADING))
        self.resume_button.setVisible(view.state in (JobState.PAUSED, JobState.FAILED))
        self.resume_button.setText("Retry" if view.state == JobState.FAILED else "Resume")
        self.cancel_button.setVisible(
            view.state in (JobState.QUEUED, JobState.DOWNLOADING, JobState.PAUSED, JobState.FAILED)
        )
        self.use_button.setVisible(view.state == JobState.DONE)


class PendingRow(QFrame):
    """A partial download from an earlier run: resume or discard it."""

    def __init__(
        self, controller: ModelsController, pending: PendingVariant, parent: QWidget | None = None
    ):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.pending = pending
        title = variant_title(pending.variant)
        self.setAccessibleName(f"Unfinished download of {title}")
        self.title = QLabel(title)
        self.title.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, PROGRESS_STEPS)
        self.bar.setAccessibleName(f"Progress of {pending.variant.quantization}")
        if pending.total:
            self.bar.setValue(int(PROGRESS_STEPS * pending.done / pending.total))
            done = f"{human_size(pending.done)} of {human_size(pending.total)}"
        else:
            done = human_size(pending.done)
        self.status = QLabel(f"Unfinished download from an earlier session ({done} on disk).")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Download status")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setAccessibleName("Resume download")
        self.resume_button.clicked.connect(lambda: controller.resume_pending(pending))
        self.discard_button = QPushButton("Discard")
        self.discard_button.setAccessibleName("Discard partial download")
        self.discard_button.setToolTip("Delete the partial file")
        self.discard_button.clicked.connect(lambda: controller.discard_pending(pending))
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.resume_button)
        buttons.addWidget(self.discard_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addLayout(buttons)


class DownloadsTab(QWidget):
    """The download queue, newest last, with unfinished downloads from earlier runs on top."""

    def __init__(self, controller: ModelsController, parent: QWidget | None = None):
        super().__init__(parent)
        self._controller = controller
        self.rows: dict[int, DownloadRow] = {}
        self.pending_rows: dict[tuple[str, str], PendingRow] = {}
        self.token_prompt = TokenPrompt()
        self.token_prompt.token_entered.connect(controller.save_token)
        self.empty = QLabel("No downloads yet. Pick a model in the Catalog or Search tab.")
        self.empty.setWordWrap(True)
        inner = QWidget()
        self._list = QVBoxLayout(inner)
        self._list.addWidget(self.empty)
        self._list.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        scroll.setAccessibleName("Downloads")
        layout = QVBoxLayout(self)
        layout.addWidget(self.token_prompt)
        layout.addWidget(scroll, 1)
        controller.job_changed.connect(self.on_job_changed)
        controller.pending_listed.connect(self.on_pending_listed)
        controller.token_saved.connect(self.token_prompt.hide)
        for view in controller.jobs():
            self.on_job_changed(view)

    def _insert(self, widget: QWidget) -> None:
        self._list.insertWidget(self._list.count() - 1, widget)  # above the stretch
        self.empty.hide()

    @Slot(object)
    def on_job_changed(self, view: JobView) -> None:
        row = self.rows.get(view.id)
        if row is None:
            row = DownloadRow(self._controller, view)
            self.rows[view.id] = row
            self._insert(row)
            # A resumed partial now has a live row of its own.
            stale = self.pending_rows.pop((view.variant.repo, view.variant.filename), None)
            if stale is not None:
                stale.deleteLater()
        else:
            row.update_view(view)
        if view.state == JobState.FAILED and view.gated:
            self.token_prompt.ask(view.error or "This repository needs a Hugging Face token.")

    @Slot(list)
    def on_pending_listed(self, found: list) -> None:
        keys = {p.key for p in found}
        for key in [k for k in self.pending_rows if k not in keys]:
            self.pending_rows.pop(key).deleteLater()
        for pending in found:
            if pending.key not in self.pending_rows:
                row = PendingRow(self._controller, pending)
                self.pending_rows[pending.key] = row
                self._list.insertWidget(0, row)
                self.empty.hide()
        if not self.rows and not self.pending_rows:
            self.empty.show()

    def row_for(self, quantization: str) -> DownloadRow | None:
        """The newest row downloading this quantization (tests, accessibility tools)."""
        matches = [r for r in self.rows.values() if r.variant.quantization == quantization]
        return matches[-1] if matches else None
