"""Above the chat on a first run: the model suggested for this machine, its download size and
expected speed, with Download (one click: the Models page opens on its download) and Not now."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from assistant.models.hub import ModelVariant
from assistant.models.recommend import Recommendation


class RecommendationCard(QFrame):
    """Signals: download_requested(ModelVariant), dismissed()."""

    download_requested = Signal(ModelVariant)
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName("Recommended model")
        self.recommendation: Recommendation | None = None
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.download_button = QPushButton("Download")
        self.download_button.setAccessibleName("Download the recommended model")
        self.not_now_button = QPushButton("Not now")
        self.download_button.clicked.connect(self._download)
        self.not_now_button.clicked.connect(self.dismissed)
        text = QVBoxLayout()
        text.addWidget(self.title)
        text.addWidget(self.label)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addLayout(text, 1)
        layout.addWidget(self.download_button, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.not_now_button, 0, Qt.AlignmentFlag.AlignVCenter)
        self.hide()

    def show_recommendation(self, recommendation: Recommendation | None) -> None:
        self.recommendation = recommendation
        if recommendation is None:
            self.hide()
            return
        self.title.setText(f"Recommended for this computer: {recommendation.entry.name}")
        self.label.setText(
            f"{recommendation.sentence()} The starter model is for trying things out; this one "
            f"writes much better answers. {recommendation.entry.description} "
            f"License: {recommendation.entry.license}."
        )
        self.download_button.setEnabled(True)
        self.download_button.setText("Download")
        self.show()

    def on_download_changed(self, variant: ModelVariant, state: str) -> None:
        """A download's news: if it is this one's and it ended without the model (failed,
        cancelled, paused), Download is offered again."""
        r = self.recommendation
        if r is None or variant != r.variant:
            return
        if state in ("failed", "cancelled", "paused"):
            self.download_button.setEnabled(True)
            self.download_button.setText("Resume" if state == "paused" else "Download")

    def _download(self) -> None:
        if self.recommendation is not None:
            self.download_button.setEnabled(False)
            self.download_button.setText("Downloading...")
            self.download_requested.emit(self.recommendation.variant)
