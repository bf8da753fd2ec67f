"""A small live line chart drawn with QPainter: a title, one line per series over the last
minutes (x: seconds ago), a y axis that grows to a round number, and a legend when there is
more than one line. The Monitor's charts; QtCharts would bring in PySide6's Add-ons (hundreds
of MB) for four charts."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPainterPath, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QWidget

# Line colours that read on light and dark windows alike (Okabe-Ito, for colour blindness).
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7")


class Series:
    """One line's points (x: seconds ago, y: its value), as the chart draws them."""

    def __init__(self, name: str):
        self.name = name
        self._points: list[QPointF] = []

    def replace(self, points: list[QPointF]) -> None:
        self._points = list(points)

    def points(self) -> list[QPointF]:
        return list(self._points)

    def count(self) -> int:
        return len(self._points)


class LineChart(QWidget):
    def __init__(
        self,
        title: str,
        names: tuple[str, ...],
        unit: str,
        span_s: float,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.title = title
        self.unit = unit
        self.span_s = span_s
        self.series = [Series(name) for name in names]
        self.top = 1.0  # the y axis' upper end
        self.setMinimumSize(260, 170)
        self.setAccessibleName(title)

    def show_values(self, lines: list[list[QPointF]]) -> None:
        for series, points in zip(self.series, lines, strict=True):
            series.replace(points)
        values = [p.y() for s in self.series for p in s.points()]
        self.top = nice_ceiling(max(values, default=0.0))
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.WindowText)
        grid = QColor(text)
        grid.setAlpha(50)
        metrics = QFontMetrics(self.font())
        line_h = metrics.height()
        labels = [self._label(self.top * i / 4) for i in range(5)]
        left = max(metrics.horizontalAdvance(label) for label in labels) + 8
        legend = line_h + 4 if len(self.series) > 1 else 0
        plot = QRectF(
            left, line_h + 6, self.width() - left - 8, self.height() - 2.5 * line_h - 16 - legend
        )
        if plot.width() <= 0 or plot.height() <= 0:
            return
        painter.setPen(text)
        painter.drawText(
            QRectF(0, 0, self.width(), line_h + 2), Qt.AlignmentFlag.AlignHCenter, self.title
        )
        for i, label in enumerate(labels):  # y: five ticks, 0 at the bottom
            y = plot.bottom() - plot.height() * i / 4
            painter.setPen(QPen(grid, 1))
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(text)
            painter.drawText(
                QRectF(0, y - line_h / 2, left - 4, line_h),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                label,
            )
        for i in range(5):  # x: seconds ago, from -span to now
            x = plot.left() + plot.width() * i / 4
            seconds = -self.span_s * (4 - i) / 4
            painter.drawText(
                QRectF(x - 40, plot.bottom() + line_h / 2 + 4, 80, line_h),
                Qt.AlignmentFlag.AlignHCenter,
                f"{seconds:.0f} s",
            )
        for index, series in enumerate(self.series):
            colour = QColor(COLOURS[index % len(COLOURS)])
            points = [self._at(plot, p) for p in series.points() if p.x() >= -self.span_s]
            if len(points) >= 2:
                path = QPainterPath(points[0])
                for point in points[1:]:
                    path.lineTo(point)
                painter.setPen(QPen(colour, 2))
                painter.drawPath(path)
            if legend:
                x = plot.left() + index * (plot.width() / len(self.series))
                y = self.height() - line_h - 2
                painter.fillRect(QRectF(x, y + line_h / 2 - 2, 14, 4), colour)
                painter.setPen(text)
                painter.drawText(QPointF(x + 18, y + metrics.ascent()), series.name)
        painter.end()

    def _at(self, plot: QRectF, point: QPointF) -> QPointF:
        x = plot.right() + plot.width() * point.x() / self.span_s
        y = plot.bottom() - plot.height() * min(point.y(), self.top) / self.top
        return QPointF(x, y)

    def _label(self, value: float) -> str:
        number = f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"
        return number + (f" {self.unit}" if self.unit else "")


def nice_ceiling(value: float) -> float:
    """The round number (1, 2 or 5 times a power of ten) at or above ``value``; 1 for 0."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power
