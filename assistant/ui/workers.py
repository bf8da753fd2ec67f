"""Work that leaves the GUI thread: the one inference thread and one-shot pool tasks.

Two doors only (STYLE.md): ``InferenceWorker`` owns the Engine on a single QThread, and
``run_task()`` runs short one-shot jobs (import, export, finding the starter model) on a
QThreadPool. Neither ever sees the Store: they get data and hand back results.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from assistant.errors import AssistantError

log = logging.getLogger(__name__)


def error_completion(message: str, model_file: str = "") -> Any:
    """A Completion that carries an error instead of text (the worker never lets one escape)."""
    from assistant.engine import Completion

    return Completion(
        text="",
        finish_reason="error",
        prompt_tokens=0,
        completion_tokens=0,
        cached_tokens=0,
        ttft_s=0.0,
        duration_s=0.0,
        tokens_per_s=0.0,
        context_tokens=0,
        trimmed_messages=0,
        model_file=model_file,
        error=message,
    )


class InferenceWorker(QObject):
    """Owns the Engine; lives on the inference QThread and does one thing at a time.

    Slots are invoked through queued signals from the controller, so requests run in the order
    they were made (a model swap asked for during a reply runs once that reply has stopped).

    Signals:
        load_progress(float): 0..1 while llama.cpp reads the weights.
        model_loaded(object): a LoadedModel, now the active model.
        load_failed(str, str): path and the sentence to show; the previous model (if any) stays.
        model_restored(object): after a failed load closed the old model, the LoadedModel
            reloaded (or None if that failed too).
        model_released(str, object, str): the model at this path is closed (its file may be
            deleted); the LoadedModel now active (None when none) and a problem to show.
        text_generated(str): one decoded piece of the reply (the controller batches them).
        generation_finished(object): the Completion, also for cancelled and failed replies.
        closed(): the engine is closed; the thread can quit.
    """

    load_progress = Signal(float)
    model_loaded = Signal(object)
    load_failed = Signal(str, str)
    model_restored = Signal(object)
    model_released = Signal(str, object, str)
    text_generated = Signal(str)
    generation_finished = Signal(object)
    closed = Signal()

    def __init__(self, stop: threading.Event, engine_factory: Callable[[], Any] | None = None):
        super().__init__()
        self._stop = stop
        self._engine_factory = engine_factory
        self._engine: Any = None

    def _get_engine(self) -> Any:
        # Created on first use, i.e. on the inference thread that will own it.
        if self._engine is None:
            if self._engine_factory is None:
                from assistant.engine import Engine

                self._engine = Engine()
            else:
                self._engine = self._engine_factory()
        return self._engine

    @Slot()
    def name_thread(self) -> None:
        """Log records from this thread say "inference" instead of Python's "Dummy-N"."""
        threading.current_thread().name = "inference"

    @Slot(str, int, int)
    def load(self, path: str, n_ctx: int, n_gpu_layers: int) -> None:
        engine = self._get_engine()
        previous = engine.model
        try:
            loaded = engine.load(
                Path(path), n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, progress=self._progress
            )
        except AssistantError as exc:
            log.warning("Could not load %s: %s", path, exc)
            self.load_failed.emit(path, str(exc))
            self._restore(previous)
            return
        except Exception as exc:  # a bug or an unexpected llama.cpp failure: log it, keep going
            log.exception("Unexpected error loading %s", path)
            self.load_failed.emit(path, f"Could not load {Path(path).name}: {exc}")
            self._restore(previous)
            return
        self.model_loaded.emit(loaded)

    @Slot(str, str, int, int)
    def release(self, path: str, fallback: str, n_ctx: int, n_gpu_layers: int) -> None:
        """Close the model at ``path`` if it is loaded, then load ``fallback`` (if any).

        Closed first, so the file is no longer open when it is deleted, whatever the fallback
        does; the old model is never restored.
        """
        engine = self._engine
        current = engine.model if engine is not None else None
        if current is None or resolved_path(current.path) != resolved_path(path):
            self.model_released.emit(path, current, "")  # not in use (any more): nothing to do
            return
        try:
            engine.close()
        except Exception:
            log.exception("Error closing %s", path)
        if not fallback:
            self.model_released.emit(path, None, "")
            return
        try:
            loaded = engine.load(
                Path(fallback), n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, progress=self._progress
            )
        except AssistantError as exc:
            log.warning("Could not load %s: %s", fallback, exc)
            self.model_released.emit(path, None, str(exc))
            return
        except Exception as exc:
            log.exception("Unexpected error loading %s", fallback)
            self.model_released.emit(path, None, f"Could not load {Path(fallback).name}: {exc}")
            return
        self.model_released.emit(path, loaded, "")

    def _restore(self, previous: Any) -> None:
        """Engine.load validates before closing the old model, but if llama.cpp failed after
        the old one was closed, load it again so the user keeps a working model."""
        engine = self._engine
        if previous is None or engine is None or engine.model is not None:
            return
        try:
            loaded = engine.load(
                previous.path, n_ctx=previous.n_ctx, n_gpu_layers=previous.n_gpu_layers
            )
        except Exception:
            log.exception("Could not reload the previous model %s", previous.path)
            loaded = None
        self.model_restored.emit(loaded)

    def _progress(self, fraction: float) -> None:
        self.load_progress.emit(float(fraction))

    @Slot(object, object)
    def generate(self, messages: list[dict[str, str]], params: Any) -> None:
        engine = self._get_engine()
        model = engine.model
        model_file = model.path.name if model is not None else ""
        try:
            completion = engine.generate(messages, params, on_text=self._emit_text, stop=self._stop)
        except AssistantError as exc:
            completion = error_completion(str(exc), model_file)
        except Exception as exc:
            log.exception("Unexpected error while generating")
            completion = error_completion(f"Generation failed: {exc}", model_file)
        self.generation_finished.emit(completion)

    def _emit_text(self, piece: str) -> None:
        if piece:
            self.text_generated.emit(piece)

    @Slot()
    def close(self) -> None:
        if self._engine is not None:
            try:
                self._engine.close()
            except Exception:
                log.exception("Error closing the engine")
            self._engine = None
        self.closed.emit()


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


def run_task(
    fn: Callable[..., Any],
    *args: Any,
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    **kwargs: Any,
) -> _TaskHandle:
    """Run ``fn(*args, **kwargs)`` on the pool; call on_done/on_error on the GUI thread.

    Call from the GUI thread only (the handle must live there).
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
