"""Bringing a collection up to date: find its files, read the new and changed ones, cut them
into passages, embed them (through the engine) and store them; drop the files that are gone.

A file is stored whole in one transaction, so a stop, a crash or a restart leaves each file
either indexed or pending; the next run goes on with the pending ones (``run`` is resumable by
construction). Each file that cannot be read is kept as "skipped" with its reason, shown to the
person; nothing else stops.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.documents import reading
from assistant.documents.chunks import chunk
from assistant.documents.index import Collection, DocumentIndex
from assistant.errors import AssistantError

log = logging.getLogger(__name__)

EMBED_GROUP = 64  # passages per embedding request
SKIPPED_FOLDERS = frozenset(
    {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".cache"}
)

Embed = Callable[[list[str]], np.ndarray]


@dataclass
class Progress:
    """Where a run is: ``done`` of ``total`` files to read, the one being read."""

    collection: str
    done: int = 0
    total: int = 0
    path: str = ""
    passages: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    removed: int = 0
    missing_sources: list[str] = field(default_factory=list)
    finished: bool = False
    stopped: bool = False


class Indexer:
    def __init__(
        self,
        index: DocumentIndex,
        embed: Embed,
        *,
        progress: Callable[[Progress], None] | None = None,
        stop: threading.Event | None = None,
    ):
        self.index = index
        self.embed = embed
        self.progress = progress or (lambda p: None)
        self.stop = stop or threading.Event()

    def run(self, collection: Collection) -> Progress:
        self.index.hold_purges()
        try:
            return self._run(collection)
        finally:
            self.index.release_purges()  # deleted text leaves the index once, at the end

    def _run(self, collection: Collection) -> Progress:
        state = Progress(collection.name)
        for _ in range(3):  # files that change while being read are read again, a few times
            self.scan(collection, state)
            pending = self.index.pending_files(collection)
            if not pending:
                break
            state.total = state.done + len(pending)
            for file in pending:
                if self.stop.is_set():
                    state.stopped = True
                    self.progress(state)
                    return state
                state.path = file.path
                self.progress(state)
                try:
                    self._index_file(collection, file.id, Path(file.path), state)
                except (AssistantError, OSError):
                    raise  # the engine or the database: the run stops, said by the caller
                except Exception as exc:  # noqa: BLE001 - one odd file never stops the rest
                    log.warning("Could not index %s", file.path, exc_info=exc)
                    reason = f"it could not be read ({type(exc).__name__}: {exc})"[:300]
                    self.index.skip_file(collection, file.id, reason)
                    state.skipped.append((file.path, reason))
                state.done += 1
        state.finished = True
        state.path = ""
        self.progress(state)
        return state

    def scan(self, collection: Collection, state: Progress) -> None:
        """Compare the sources on disk with the files known: new and changed ones become
        pending, vanished ones go. A source that is missing (a drive not plugged in) keeps its
        files and is reported."""
        known = self.index.file_states(collection)
        seen: set[str] = set()
        for source in self.index.collection(collection.name).sources:
            root = Path(source)
            if not root.exists():
                state.missing_sources.append(source)
                seen.update(p for p in known if _within(p, source))
                continue
            for path in _walk(root):
                key = str(path)
                try:
                    key.encode("utf-8")  # a name that is not UTF-8 cannot be stored as text
                    st = path.stat()
                except (OSError, UnicodeEncodeError):
                    continue
                seen.add(key)
                old = known.get(key)
                if old is None or (old.size, old.mtime_ns) != (st.st_size, st.st_mtime_ns):
                    self.index.set_pending(collection, key, st.st_size, st.st_mtime_ns)
        gone = [f.id for p, f in known.items() if p not in seen]
        if gone:
            self.index.delete_files(collection, gone)
            state.removed += len(gone)

    def _index_file(
        self, collection: Collection, file_id: int, path: Path, state: Progress
    ) -> None:
        try:
            before = path.stat()
            segments = reading.read(path)
        except reading.Unreadable as exc:
            if str(exc) == "the file is gone":
                self.index.delete_files(collection, [file_id])
                state.removed += 1
            else:
                self.index.skip_file(collection, file_id, str(exc))
                state.skipped.append((str(path), str(exc)))
            return
        except OSError:
            self.index.delete_files(collection, [file_id])
            state.removed += 1
            return
        passages = chunk(segments)
        if not passages:
            self.index.skip_file(collection, file_id, "it has no text")
            state.skipped.append((str(path), "it has no text"))
            return
        vectors = []
        for start in range(0, len(passages), EMBED_GROUP):
            if self.stop.is_set():
                return  # still pending: the next run reads it again
            group = passages[start : start + EMBED_GROUP]
            vectors.append(self.embed([p.text for p in group]))
        try:
            after = path.stat()
        except OSError:
            after = None
        if after is None or (after.st_size, after.st_mtime_ns) != (
            before.st_size,
            before.st_mtime_ns,
        ):
            # Changed while it was read: leave it pending with its new size, read it again.
            if after is not None:
                self.index.set_pending(collection, str(path), after.st_size, after.st_mtime_ns)
            return
        self.index.store_file(collection, file_id, passages, np.concatenate(vectors))
        state.passages += len(passages)


def _walk(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for folder, dirs, names in os.walk(root, onerror=lambda e: log.info("Not read: %s", e)):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_FOLDERS)
        for name in sorted(names):
            if name.startswith(".") or Path(name).suffix.lower() in reading.IGNORED_SUFFIXES:
                continue
            path = Path(folder) / name
            if path.is_file():  # not sockets, fifos or broken links
                yield path


def _within(path: str, source: str) -> bool:
    return path == source or path.startswith(source.rstrip("/\\") + os.sep)
