"""Waiting in a real Qt event loop, for the benchmarks that drive the app."""

from __future__ import annotations

from collections.abc import Callable


def spin(done: Callable[[], bool], timeout: float = 300.0) -> None:
    """Run the event loop until ``done()``. Idle between events, as the app is: a busy
    processEvents() loop would take a core from llama.cpp's threads and inflate every figure."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    poll = QTimer(interval=5)
    poll.timeout.connect(lambda: done() and loop.quit())
    QTimer.singleShot(int(timeout * 1000), loop.quit)
    poll.start()
    if not done():
        loop.exec()
    poll.stop()
    if not done():
        raise TimeoutError("the app did not get there in time")
