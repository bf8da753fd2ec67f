"""The documents' database: collections, the files and folders added to them, each file's state,
and its passages with their vectors; full-text search (FTS5) over the passages.

Like the conversations' Store: owner-only, WAL, ``secure_delete``, and after a deletion the
search index merged and the WAL truncated, so a removed file's text leaves no byte behind.

Vectors are stored as float16 (half the bytes; cosine similarity moves by < 1e-3) and searched
in memory: numpy multiplies the query by every vector of the chosen collections, kept as one
float32 matrix per collection until it changes. Why no vector index: at 100,000 passages that
product is ~10 ms on two cores (tests/benchmarks/bench_documents.py), exact, and needs no
SQLite that loads extensions (python.org's builds cannot, so sqlite-vec is out of reach).
"""

from __future__ import annotations

import logging
import sqlite3
import textwrap
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlite_utils import Database, Migrations

from assistant import database, paths
from assistant.documents.chunks import Chunk
from assistant.errors import AssistantError, StorageError

log = logging.getLogger(__name__)

migrations = Migrations("documents")
FILE_STATES = ("pending", "indexed", "skipped")
KEYWORD_POSTINGS = 8000  # passages a keyword search scores at most (see _selective)


@migrations()
def m001_collections_files_chunks(db: Database) -> None:
    db.executescript(
        textwrap.dedent(
            """\
        CREATE TABLE collections (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,       -- ISO-8601 UTC
            embedding_model TEXT NOT NULL,  -- file name of the model its vectors come from
            version INTEGER NOT NULL DEFAULT 0  -- bumped by every change of its passages
        );
        CREATE TABLE sources (              -- what the person added: files and folders
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            path TEXT NOT NULL,             -- absolute
            added_at TEXT NOT NULL,
            UNIQUE (collection_id, path)
        );
        CREATE TABLE files (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            path TEXT NOT NULL,             -- absolute
            size INTEGER NOT NULL,          -- bytes, and mtime_ns: as seen when last read;
            mtime_ns INTEGER NOT NULL,      -- a file whose either differs is read again
            -- pending: found, not (or no longer) indexed; indexed: its passages are stored;
            -- skipped: not readable as text, reason says why.
            status TEXT NOT NULL CHECK (status IN ('pending', 'indexed', 'skipped')),
            reason TEXT,
            indexed_at TEXT,
            UNIQUE (collection_id, path)
        );
        CREATE INDEX files_by_status ON files (collection_id, status);
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,       -- its place in the file
            text TEXT NOT NULL,
            page INTEGER,                   -- 1-based, for PDFs
            line_start INTEGER,             -- 1-based lines, for text files
            line_end INTEGER,
            vector BLOB NOT NULL            -- float16, unit length, the collection's model's
        );
        CREATE INDEX chunks_by_file ON chunks (file_id);
        """
        )
    )
    db.table("chunks").enable_fts(
        ["text"], create_triggers=True, tokenize="porter unicode61 remove_diacritics 2"
    )


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    embedding_model: str
    sources: tuple[str, ...] = ()
    files: int = 0
    indexed: int = 0
    pending: int = 0
    skipped: int = 0
    chunks: int = 0


@dataclass(frozen=True)
class FileState:
    id: int
    path: str
    size: int
    mtime_ns: int
    status: str
    reason: str | None


@dataclass(frozen=True)
class Passage:
    """A stored chunk, as retrieval returns it."""

    id: int
    text: str
    path: str
    page: int | None
    line_start: int | None
    line_end: int | None
    collection: str

    @property
    def where(self) -> str:
        """Its place in its file, in words: "page 3", "lines 10-24"."""
        if self.page:
            return f"page {self.page}"
        if self.line_start:
            if self.line_end and self.line_end != self.line_start:
                return f"lines {self.line_start}-{self.line_end}"
            return f"line {self.line_start}"
        return ""


# (database, collection id) -> (its version, chunk ids, float32 vectors): kept for the process,
# so that each question (a new DocumentIndex each time) does not read them all again.
_MATRICES: dict[tuple[str, int], tuple[int, np.ndarray, np.ndarray]] = {}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class DocumentIndex:
    def __init__(self, path: Path | str | None = None, *, busy_timeout: float = 10.0):
        self.path = Path(path) if path is not None else paths.documents_path()
        self._held = self._due = False
        try:
            self.db = database.connect(self.path, busy_timeout=busy_timeout,
                                       check_same_thread=False)  # fmt: skip
            migrations.apply(self.db)
        except sqlite3.Error as exc:
            raise StorageError(f"Could not open the documents' database {self.path}: {exc}") from (
                exc
            )

    def close(self) -> None:
        self.release_purges()
        self.db.conn.close()

    def __enter__(self) -> DocumentIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self.db.conn
        try:
            with conn:
                yield conn
        except sqlite3.IntegrityError as exc:  # its file or collection was removed meanwhile
            raise StorageError(f"It was removed while being indexed ({exc}).") from exc
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StorageError("The documents' database is busy; try again.") from exc
            raise StorageError(f"The documents' database failed: {exc}") from exc

    # -- collections ---------------------------------------------------------------------------

    def collection(self, name: str) -> Collection:
        row = self.db.conn.execute(
            "SELECT id, name, embedding_model FROM collections WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            known = ", ".join(c.name for c in self.collections()) or "none yet"
            raise AssistantError(f"No collection named '{name}' (collections: {known}).")
        return self._describe(*row)

    def collections(self) -> list[Collection]:
        rows = self.db.conn.execute(
            "SELECT id, name, embedding_model FROM collections ORDER BY name COLLATE NOCASE"
        ).fetchall()
        return [self._describe(*row) for row in rows]

    def _describe(self, cid: int, name: str, model: str) -> Collection:
        conn = self.db.conn
        counts = dict(
            conn.execute(
                "SELECT status, count(*) FROM files WHERE collection_id = ? GROUP BY status",
                (cid,),
            ).fetchall()
        )
        chunks = conn.execute(
            "SELECT count(*) FROM chunks JOIN files ON files.id = chunks.file_id "
            "WHERE files.collection_id = ?",
            (cid,),
        ).fetchone()[0]
        sources = tuple(
            r[0]
            for r in conn.execute(
                "SELECT path FROM sources WHERE collection_id = ? ORDER BY id", (cid,)
            )
        )
        return Collection(
            cid,
            name,
            model,
            sources,
            files=sum(counts.values()),
            indexed=counts.get("indexed", 0),
            pending=counts.get("pending", 0),
            skipped=counts.get("skipped", 0),
            chunks=chunks,
        )

    def create(self, name: str, embedding_model: str) -> Collection:
        name = name.strip()
        if not name:
            raise AssistantError("A collection needs a name.")
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO collections (name, created_at, embedding_model) "
                "VALUES (?, ?, ?)",
                (name, _now(), embedding_model),
            )
        return self.collection(name)

    def add_source(self, collection: Collection, path: Path) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO sources (collection_id, path, added_at) VALUES (?, ?, ?)",
                (collection.id, str(path), _now()),
            )

    def remove_collection(self, name: str) -> None:
        """Delete a collection with its passages and vectors, leaving no byte of them."""
        collection = self.collection(name)
        with self._write() as conn:
            conn.execute("DELETE FROM collections WHERE id = ?", (collection.id,))
        _MATRICES.pop((str(self.path), collection.id), None)
        self._purged_later()

    def remove_source(self, collection: Collection, path: Path) -> int:
        """Take a file or folder out of a collection (its passages go); how many files went."""
        prefix = str(path).rstrip("/\\")
        if prefix not in collection.sources:
            listed = "; ".join(collection.sources) or "none"
            raise AssistantError(
                f"{path} is not one of the files or folders added to {collection.name} "
                f"({listed}). Take out the folder that holds it, or delete the file and run "
                f"`assistant docs update {collection.name}`."
            )
        with self._write() as conn:
            conn.execute(
                "DELETE FROM sources WHERE collection_id = ? AND path = ?",
                (collection.id, prefix),
            )
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id, path FROM files WHERE collection_id = ?", (collection.id,)
                )
                if _is_within(r[1], prefix)
            ]
        self.delete_files(collection, ids)
        return len(ids)

    def hold_purges(self) -> None:
        """Merge the search index once, at release_purges(), not after every change (a run
        that re-reads many files)."""
        self._held = True

    def release_purges(self) -> None:
        self._held, due = False, self._due
        self._due = False
        if due:
            self._purge()

    def _purged_later(self) -> None:
        if self._held:
            self._due = True
        else:
            self._purge()

    def _purge(self) -> None:
        """Merge the search index (FTS5 keeps deleted terms in old segments until merged) and
        truncate the WAL (old page images), as the conversations' Store does."""
        with self._write() as conn:
            conn.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('optimize')")
        self.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- files ---------------------------------------------------------------------------------

    def file_states(self, collection: Collection) -> dict[str, FileState]:
        rows = self.db.conn.execute(
            "SELECT id, path, size, mtime_ns, status, reason FROM files WHERE collection_id = ?",
            (collection.id,),
        )
        return {r[1]: FileState(*r) for r in rows}

    def set_pending(self, collection: Collection, path: str, size: int, mtime_ns: int) -> int:
        """A file found new or changed: pending until its passages are stored."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO files (collection_id, path, size, mtime_ns, status) "
                "VALUES (?, ?, ?, ?, 'pending') ON CONFLICT (collection_id, path) DO UPDATE "
                "SET size = excluded.size, mtime_ns = excluded.mtime_ns, status = 'pending', "
                "reason = NULL",
                (collection.id, path, size, mtime_ns),
            )
            return int(
                conn.execute(
                    "SELECT id FROM files WHERE collection_id = ? AND path = ?",
                    (collection.id, path),
                ).fetchone()[0]
            )

    def pending_files(self, collection: Collection) -> list[FileState]:
        rows = self.db.conn.execute(
            "SELECT id, path, size, mtime_ns, status, reason FROM files "
            "WHERE collection_id = ? AND status = 'pending' ORDER BY id",
            (collection.id,),
        )
        return [FileState(*r) for r in rows]

    def skip_file(self, collection: Collection, file_id: int, reason: str) -> None:
        with self._write() as conn:
            had = conn.execute("SELECT 1 FROM chunks WHERE file_id = ? LIMIT 1", (file_id,))
            old = had.fetchone() is not None
            conn.execute("DELETE FROM chunks WHERE file_id = ?", (file_id,))
            conn.execute(
                "UPDATE files SET status = 'skipped', reason = ?, indexed_at = ? WHERE id = ?",
                (reason, _now(), file_id),
            )
            self._bump(conn, collection)
        if old:
            self._purged_later()

    def store_file(
        self, collection: Collection, file_id: int, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> None:
        """A file's passages and vectors replace its old ones, in one transaction: a crash
        leaves it pending (read again at the next run), never half indexed."""
        half = np.asarray(vectors, dtype=np.float16)
        with self._write() as conn:
            old = conn.execute("SELECT count(*) FROM chunks WHERE file_id = ?", (file_id,))
            replaced = old.fetchone()[0] > 0
            conn.execute("DELETE FROM chunks WHERE file_id = ?", (file_id,))
            conn.executemany(
                "INSERT INTO chunks (file_id, ordinal, text, page, line_start, line_end, vector) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (file_id, i, c.text, c.page, c.line_start, c.line_end, half[i].tobytes())
                    for i, c in enumerate(chunks)
                ],
            )
            conn.execute(
                "UPDATE files SET status = 'indexed', reason = NULL, indexed_at = ? WHERE id = ?",
                (_now(), file_id),
            )
            self._bump(conn, collection)
        if replaced:
            self._purged_later()

    def delete_files(self, collection: Collection, file_ids: Sequence[int]) -> None:
        if not file_ids:
            return
        with self._write() as conn:
            conn.executemany("DELETE FROM files WHERE id = ?", [(i,) for i in file_ids])
            self._bump(conn, collection)
        self._purged_later()

    def _bump(self, conn: sqlite3.Connection, collection: Collection) -> None:
        conn.execute("UPDATE collections SET version = version + 1 WHERE id = ?", (collection.id,))

    # -- search --------------------------------------------------------------------------------

    def matrix(self, collection: Collection) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, float32 vectors as rows) of a collection, cached until it changes."""
        version = self.db.conn.execute(
            "SELECT version FROM collections WHERE id = ?", (collection.id,)
        ).fetchone()
        version = version[0] if version else -1
        key = (str(self.path), collection.id)
        cached = _MATRICES.get(key)
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        started = time.perf_counter()
        rows = self.db.conn.execute(
            "SELECT chunks.id, vector FROM chunks JOIN files ON files.id = chunks.file_id "
            "WHERE files.collection_id = ? ORDER BY chunks.id",
            (collection.id,),
        ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if rows:
            blob = b"".join(r[1] for r in rows)
            vectors = np.frombuffer(blob, dtype=np.float16).reshape(len(rows), -1)
            matrix = vectors.astype(np.float32)
        else:
            matrix = np.zeros((0, 0), dtype=np.float32)
        _MATRICES[key] = (version, ids, matrix)
        log.info("Loaded %d vectors of %s in %.0f ms", len(rows), collection.name,
                 (time.perf_counter() - started) * 1000)  # fmt: skip
        return ids, matrix

    def keyword_search(
        self, collections: Sequence[Collection], words: Sequence[str], limit: int
    ) -> list[tuple[int, float]]:
        """Chunk ids matching any of ``words``, with their bm25 (FTS5's: lower is better),
        best first."""
        terms = [w.replace('"', '""') for w in dict.fromkeys(words) if w.strip()]
        if not terms or not collections:
            return []
        terms = self._selective(terms)
        if not terms:
            return []
        query = " OR ".join(f'"{t}"' for t in terms)
        marks = ",".join("?" * len(collections))
        try:
            rows = self.db.conn.execute(
                "SELECT chunks.id, bm25(chunks_fts) FROM chunks_fts "
                "JOIN chunks ON chunks.id = chunks_fts.rowid "
                "JOIN files ON files.id = chunks.file_id "
                f"WHERE chunks_fts MATCH ? AND files.collection_id IN ({marks}) "
                "ORDER BY bm25(chunks_fts) LIMIT ?",
                (query, *[c.id for c in collections], limit),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            log.warning("Keyword search failed for %r: %s", query, exc)
            return []
        return [(r[0], r[1]) for r in rows]

    def _selective(self, terms: list[str]) -> list[str]:
        """The query's rarest terms, as many as fit KEYWORD_POSTINGS: bm25 is computed for
        every passage a term matches, so a word in a third of 100,000 passages would cost
        ~100 ms and add almost nothing to the ranking (its weight, the IDF, is near zero)."""
        counts = []
        for term in terms:
            try:
                row = self.db.conn.execute(
                    "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (f'"{term}"',)
                ).fetchone()
            except sqlite3.OperationalError:
                continue
            if row[0]:
                counts.append((row[0], term))
        counts.sort()
        chosen: list[str] = []
        total = 0
        for count, term in counts:
            if chosen and total + count > KEYWORD_POSTINGS:
                break
            chosen.append(term)
            total += count
        return chosen

    def passages(self, chunk_ids: Sequence[int]) -> list[Passage]:
        """The passages of ``chunk_ids``, in that order."""
        if not chunk_ids:
            return []
        marks = ",".join("?" * len(chunk_ids))
        rows = self.db.conn.execute(
            "SELECT chunks.id, chunks.text, files.path, chunks.page, chunks.line_start, "
            "chunks.line_end, collections.name FROM chunks "
            "JOIN files ON files.id = chunks.file_id "
            "JOIN collections ON collections.id = files.collection_id "
            f"WHERE chunks.id IN ({marks})",
            list(chunk_ids),
        ).fetchall()
        by_id = {r[0]: Passage(*r) for r in rows}
        return [by_id[i] for i in chunk_ids if i in by_id]


def _is_within(path: str, prefix: str) -> bool:
    return (
        path == prefix
        or path.startswith(prefix.rstrip("/\\") + "/")
        or path.startswith(prefix.rstrip("/\\") + "\\")
    )
