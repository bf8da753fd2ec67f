"""Work that leaves the GUI thread: one-shot pool tasks (the other door is the engine thread).

Two doors only: ``EngineWorker`` (engine_worker.py) talks to the engine process on its own
QThread, and ``run_task()`` runs short one-shot jobs (import, export, finding the starter model)
on a QThreadPool. Neither ever sees the Store: they get data and hand back results.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from assistant.errors import AssistantError

log = logging.getLogger(__name__)


def resolved_path(path: str | Path) -> Path:
    """The path resolved, for comparing two names of one file; as given if that fails."""
    try:
        return Path(path).resolve()
    except OSError:
        return Path(path)


# --- one-shot tasks -----------------------------------------------------------------------------


class _TaskHandle(QObject):
    """Lives on the GUI thread: receives the runnable's result there and calls back."""

    succeeded = Signal(object)
    failed = Signal(object)

    def __init__(
        self,
        on_done: Callable[[Any], None] | None,
        on_error: Callable[[BaseException], None] | None,
    ):
        super().__init__()
        self._on_done = on_done
        self._on_error = on_error
        self.succeeded.connect(self._deliver_result)
        self.failed.connect(self._deliver_error)

    @Slot(object)
    def _deliver_result(self, result: Any) -> None:
        try:
            if self._on_done is not None:
                self._on_done(result)
        finally:
            _release(self)

    @Slot(object)
    def _deliver_error(self, error: BaseException) -> None:
        try:
            if self._on_error is not None:
                self._on_error(error)
            else:
                log.error("Background task failed: %s", error, exc_info=error)
        finally:
            _release(self)


class _Task(QRunnable):
    def __init__(self, handle: _TaskHandle, fn: Callable[..., Any], args: tuple, kwargs: dict):
        super().__init__()
        # Python keeps the runnable alive (see _pending); Qt must not delete it under us.
        self.setAutoDelete(False)
        self.handle = handle
        self._fn = fn
        self._args = args
        self._kwargs = kwargs

    def run(self) -> None:
        try:
            result = self._fn(*self._args, **self._kwargs)
        except BaseException as exc:  # delivered to on_error on the GUI thread
            if not isinstance(exc, AssistantError):
                log.exception("Background task %s failed", getattr(self._fn, "__name__", self._fn))
            self.handle.failed.emit(exc)
        else:
            self.handle.succeeded.emit(result)


# Tasks stay referenced here until their last signal has been delivered on the GUI thread:
# dropping the last reference inside run() would lose the result silently.
_pending: dict[_TaskHandle, _Task] = {}
_pool: QThreadPool | None = None


def task_pool() -> QThreadPool:
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(2)
    return _pool


def _release(handle: _TaskHandle) -> None:
    _pending.pop(handle, None)


def run_task[R](
    fn: Callable[..., R],
    *args: object,
    on_done: Callable[[R], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    **kwargs: object,
) -> _TaskHandle:
    """Run ``fn(*args, **kwargs)`` on the pool; call on_done/on_error on the GUI thread.

    Call from the GUI thread only (the handle must live there). ``on_done`` gets what ``fn``
    returns; inside, the result travels through a Qt signal as a plain object (``Any`` there).
    """
    handle = _TaskHandle(on_done, on_error)
    task = _Task(handle, fn, args, kwargs)
    _pending[handle] = task
    task_pool().start(task)
    return handle


def pending_tasks() -> int:
    """Tasks started whose result has not been delivered yet."""
    return len(_pending)


def wait_for_tasks(msecs: int) -> bool:
    """Bounded wait for running pool tasks (shutdown and tests)."""
    return task_pool().waitForDone(msecs)
