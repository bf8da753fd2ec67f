"""The Monitor (Ctrl+Shift+M): live charts of the engine's load, and the requests in flight.

A sampler on its own thread scrapes ``/metrics`` and ``/v1/assistant/status`` once a second (the
GUI thread never waits on the network); each sample becomes a point of ``metrics.History``
(assistant/clients/metrics.py), and the charts (ui/line_chart.py) and the table are redrawn from it,
once per sample.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PySide6.QtCore import QObject, QPointF, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from assistant.clients.engine_client import EngineClient
from assistant.clients.metrics import History, Point, Scrape
from assistant.errors import AssistantError
from assistant.ui.line_chart import LineChart

log = logging.getLogger(__name__)

SAMPLE_EVERY_MS = 1000
STATES = {"waiting": "Waiting", "prompt": "Reading the prompt", "generating": "Generating"}


@dataclass(frozen=True)
class MonitorSample:
    scrape: Scrape | None
    requests: tuple[dict[str, object], ...]
    slots: int
    error: str = ""


class MonitorSampler(QObject):
    """Scrapes the engine once a second, on its own thread."""

    sampled = Signal(MonitorSample)

    def __init__(self, url: str, key: str):
        super().__init__()
        self._url, self._key = url, key
        self._client: EngineClient | None = None
        self._timer: QTimer | None = None

    @Slot()
    def start(self) -> None:
        self._client = EngineClient(self._url, self._key)
        self._timer = QTimer(self)
        self._timer.setInterval(SAMPLE_EVERY_MS)
        self._timer.timeout.connect(self.sample)
        self._timer.start()
        self.sample()

    @Slot()
    def stop(self) -> None:
        """On the sampler's thread: stop, close the connection, then end the thread."""
        if self._timer is not None:
            self._timer.stop()
        if self._client is not None:
            self._client.close()
            self._client = None
        self.thread().quit()

    @Slot()
    def sample(self) -> None:
        if self._client is None:
            return
        try:
            scrape = Scrape.parse(self._client.metrics_text(timeout=2.0))
            status = self._client.status(timeout=2.0)
        except (AssistantError, ValueError) as exc:
            self.sampled.emit(MonitorSample(None, (), 0, str(exc)))
            return
        requests = tuple(status.get("requests") or ())
        self.sampled.emit(MonitorSample(scrape, requests, int(status.get("slots") or 0)))


class MonitorView(QWidget):
    """The Monitor window: four charts and the table of requests in flight."""

    def __init__(self, url: str, key: str, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.url = url
        self.key = key
        self.setWindowTitle("Monitor: the engine's load")
        self.setAccessibleName("Monitor")
        self.history = History()
        span = self.history.span_s
        self.requests_chart = LineChart("Requests per second", ("requests/s",), "", span)
        self.ttft_chart = LineChart("Time to first token", ("p50", "p95"), "s", span)
        self.tokens_chart = LineChart("Tokens per second", ("tokens/s",), "", span)
        self.queue_chart = LineChart("Queue and slots", ("queued", "busy slots"), "", span)
        self.charts = (self.requests_chart, self.ttft_chart, self.tokens_chart, self.queue_chart)
        self.summary = QLabel("Waiting for the engine's figures...")
        self.summary.setAccessibleName("Monitor summary")
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Client", "Model", "State", "Tokens", "Age"])
        self.table.setAccessibleName("Requests in flight")
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        grid = QGridLayout()
        for i, chart in enumerate(self.charts):
            grid.addWidget(chart, i // 2, i % 2)
        layout = QVBoxLayout(self)
        layout.addLayout(grid, 3)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        self.resize(900, 700)

        self._thread = QThread(self)
        self._thread.setObjectName("monitor")
        self._sampler = MonitorSampler(url, key)
        self._sampler.moveToThread(self._thread)
        self._thread.started.connect(self._sampler.start)
        self._sampler.sampled.connect(self.show_sample)
        self._thread.start()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)

    @property
    def sampling(self) -> bool:
        return self._thread.isRunning()

    def shutdown(self) -> None:
        """Stop sampling and wait for the thread (its calls time out within 2 s)."""
        if self._thread.isRunning():
            QTimer.singleShot(0, self._sampler, self._sampler.stop)
            if not self._thread.wait(5000):
                log.warning("The Monitor's sampler did not stop in time")
                self._thread.quit()
                self._thread.wait()

    @Slot(MonitorSample)
    def show_sample(self, sample: MonitorSample) -> None:
        if sample.scrape is None:
            self.summary.setText(f"The engine is not answering: {sample.error}")
            return
        point = self.history.add(sample.scrape)
        self._show_requests(sample.requests)
        if point is None:
            return
        self._redraw(point)

    def _redraw(self, last: Point) -> None:
        points = list(self.history.points)
        now = last.at

        def line(value) -> list[QPointF]:
            return [QPointF(p.at - now, v) for p in points if (v := value(p)) is not None]

        self.requests_chart.show_values([line(lambda p: p.requests_per_s)])
        self.ttft_chart.show_values([line(lambda p: p.ttft_p50), line(lambda p: p.ttft_p95)])
        self.tokens_chart.show_values([line(lambda p: p.tokens_per_s)])
        self.queue_chart.show_values([line(lambda p: p.queued), line(lambda p: p.running)])
        ttft = f"{last.ttft_p50:.2f} s" if last.ttft_p50 is not None else "-"
        self.summary.setText(
            f"{last.running:.0f} of {last.slots:.0f} slots busy, {last.queued:.0f} queued, "
            f"{last.tokens_per_s:.1f} tokens/s, {last.requests_per_s:.2f} requests/s, "
            f"first token p50 {ttft}"
        )

    def _show_requests(self, requests: tuple[dict[str, object], ...]) -> None:
        self.table.setRowCount(len(requests))
        for row, request in enumerate(requests):
            values = (
                str(request.get("client", "")),
                str(request.get("model", "")),
                STATES.get(str(request.get("state")), str(request.get("state"))),
                str(request.get("completion_tokens", 0)),
                f"{float(request.get('age_s', 0.0)):.1f} s",  # type: ignore[arg-type]
            )
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
