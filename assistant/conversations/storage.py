"""Conversations and messages in one SQLite file, with full-text search (sqlite-utils).

A ``Store`` owns one connection and belongs to the thread that opened it. Every write is its own
``BEGIN IMMEDIATE`` transaction, so a failed write (locked, read-only, disk full) rolls back
whole and the Store stays usable. sqlite3 errors become ``StorageError`` subclasses here, at the
boundary; ``sqlite3.ProgrammingError`` (e.g. using a closed Store) is a bug and passes through.

Over 400 lines, as one class: every write goes through the one connection, the one write
transaction (``_write``) and the one translation of SQLite errors (``_boundary``);
conversations, messages and search are its three sections. Export lives in export.py.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate

from assistant import APP_NAME, database, errors, paths
from assistant.conversations.migrations import FINISH_REASONS, ROLES, migrations
from assistant.conversations.search import MessageSearch, SearchHit
from assistant.endpoints import writer_label
from assistant.records import FinishReason

log = logging.getLogger(__name__)

# The full-text indexes over messages (migrations m002 and m008).
_SEARCH_INDEXES = ("messages_fts", "messages_trigram")

# What the engine may report; "interrupted" is reserved for Store's own crash recovery.
ENGINE_FINISH_REASONS = tuple(r for r in FINISH_REASONS if r != FinishReason.INTERRUPTED)

# Up to this many messages, a deletion merges the search index at once (about 250 ms at most on
# a small CPU); past it, the merge that drops deleted words from the index waits for close().
PURGE_AT_ONCE_MAX_MESSAGES = 50_000

# Primary SQLite result codes (the low byte of sqlite3.Error.sqlite_errorcode).
_SQLITE_CORRUPT = 11
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26


@dataclass
class Conversation:
    id: int
    title: str
    created_at: str
    updated_at: str
    model: str | None
    system_prompt: str | None
    engine: str | None = None  # the remote engine in use (its name); None: this machine
    settings: str | None = None  # its own generation settings (ChatSettings JSON), if any
    head_id: int | None = None  # the last message of the branch shown


@dataclass
class Message:
    id: int
    conversation_id: int
    role: str
    content: str
    created_at: str
    finished_at: str | None
    finish_reason: str | None  # None while a reply streams; FinishReason.INTERRUPTED after a crash
    prompt_tokens: int | None
    completion_tokens: int | None
    duration_ms: int | None
    ttft_ms: int | None
    model_file: str | None
    error: str | None = None  # why a reply ended with finish_reason FinishReason.ERROR
    engine: str | None = None  # the remote engine that wrote it (its name); None: this machine
    reasoning: str | None = None  # the reply's reasoning, apart from its answer
    reasoning_ms: int | None = None  # how long the model thought before it answered
    parent_id: int | None = None  # the message it follows (None: the first)
    sources: str | None = None  # JSON: the document passages it was given (see source_list)
    tool_calls: str | None = None  # JSON: the tool calls made while writing it (tool_call_list)
    # Not columns: where it stands among the versions of its turn (1 of 1: the only one).
    version: int = field(default=1, metadata={"column": False})
    versions: int = field(default=1, metadata={"column": False})

    @property
    def source_list(self) -> list[dict[str, Any]]:
        """The document passages the reply was given (documents), oldest first."""
        return _objects(self.sources)

    @property
    def tool_call_list(self) -> list[dict[str, Any]]:
        """The tool calls made while writing the reply, in order."""
        return _objects(self.tool_calls)

    @property
    def writer(self) -> str:
        """Who wrote it: "gpu-box / model" for a remote engine's reply, else the model file."""
        return writer_label(self.engine, self.model_file)


def _objects(text: str | None) -> list[dict[str, Any]]:
    """The objects of a JSON list column; a damaged value reads as none."""
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


_CONVERSATION_COLUMNS = ", ".join(f.name for f in fields(Conversation))
_MESSAGE_COLUMNS = ", ".join(f.name for f in fields(Message) if f.metadata.get("column", True))


def _now() -> str:
    # Fixed-width microsecond timestamps sort correctly as text.
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _translate(exc: sqlite3.Error, path: Path) -> errors.StorageError:
    """The StorageError a user should see for a sqlite3 error on the database at ``path``."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc).lower()
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "database is locked" in text:
        return errors.DatabaseLocked(
            f"The conversation database {path} is busy: another program or another Assistant "
            "window is using it. Close the other one and try again."
        )
    if primary == _SQLITE_READONLY or "readonly database" in text:
        return errors.DatabaseReadOnly(
            f"The conversation database {path} is read-only, so the change was not saved. "
            "Make the file and its folder writable."
        )
    if primary == _SQLITE_FULL or "database or disk is full" in text:
        return errors.DiskFull(
            f"The disk holding {path} is full, so the change was not saved. "
            "Free some space and try again."
        )
    if primary == _SQLITE_NOTADB or "file is not a database" in text:
        return errors.StorageError(
            f"{path} is not an {APP_NAME} conversation database (it is not a SQLite file). "
            "It was left untouched: move or rename it, and a new database will be created."
        )
    if primary == _SQLITE_CORRUPT or "malformed" in text:
        return errors.StorageError(
            f"The conversation database {path} is damaged ({exc}). It was left untouched: "
            "keep a copy of it, then move it aside to start a new one."
        )
    if primary == _SQLITE_CANTOPEN:
        return errors.StorageError(
            f"The conversation database {path} could not be opened ({exc}). "
            "Check that the path is a file and that its folder exists."
        )
    if primary == _SQLITE_IOERR:
        return errors.StorageError(
            f"The disk reported an error while using the conversation database {path} ({exc})."
        )
    return errors.StorageError(f"The conversation database {path} could not be used: {exc}.")


def _boundary[**P, R](
    method: Callable[Concatenate[Store, P], R],
) -> Callable[Concatenate[Store, P], R]:
    """Translate sqlite3 errors raised by a public Store method into StorageError."""

    @functools.wraps(method)
    def wrapper(self: Store, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.ProgrammingError:
            raise  # misuse (closed Store, wrong thread): a bug, not a storage failure
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    return wrapper


def _check_writable(path: Path) -> None:
    """Fail early, naming the path, if the database or its folder cannot be written.

    SQLite would otherwise open such a file read-only without complaint and fail on the first
    write, and in WAL mode it must also create ``-wal`` and ``-shm`` files next to it. Real
    opens rather than os.access(): they also see read-only mounts, ACLs and the effective ids.
    """
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.DatabaseReadOnly(
            f"The folder {folder} for the conversation database could not be created "
            f"({exc.strerror or exc}). Choose a writable location."
        ) from exc
    if path.is_file():
        try:
            os.close(os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0)))
        except OSError as exc:
            raise errors.DatabaseReadOnly(
                f"The conversation database {path} is read-only ({exc.strerror or exc}). "
                f"Make it writable so that {APP_NAME} can save your conversations."
            ) from exc
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".assistant-write-test-"):
            pass
    except OSError as exc:
        raise errors.DatabaseReadOnly(
            f"The folder {folder} is not writable ({exc.strerror or exc}), so {APP_NAME} "
            f"cannot save conversations in {path.name} there. Make the folder writable."
        ) from exc


class Store:
    """The conversation history: conversations, their messages, and search over them."""

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        busy_timeout: float = 5.0,
        recover: bool = True,
    ) -> None:
        """Open (creating if needed) and migrate the database; None means paths.database_path().

        ``busy_timeout``: seconds to wait for another connection's write lock before raising
        DatabaseLocked. ``recover``: mark replies left streaming by a crash as "interrupted";
        pass False for a second Store opened while the main one may be streaming a reply.
        """
        self.path = Path(path) if path is not None else paths.database_path()
        self._purge_pending = False
        _check_writable(self.path)
        conn: sqlite3.Connection | None = None
        try:
            self.db = database.connect(self.path, busy_timeout=busy_timeout)
            conn = self.db.conn
            migrations.apply(self.db)
            self._search = MessageSearch(conn)
            if recover:
                self._mark_interrupted()
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.ProgrammingError):
                raise _translate(exc, self.path) from exc
            raise

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (finishing a deferred purge first); safe to call twice."""
        if self._purge_pending:
            self._purge_pending = False
            try:
                self._purge()
            except sqlite3.Error as exc:
                log.warning("Could not purge deleted text from the search index: %s", exc)
        self.db.close()

    # -- transactions -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back whole if anything in it fails.

        IMMEDIATE takes the write lock up front, so a busy database waits in the busy handler
        instead of failing half-way with a snapshot error as a deferred BEGIN can in WAL mode.
        """
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # Some errors (SQLITE_FULL, SQLITE_IOERR) roll back by themselves; then skip it.
            if conn.in_transaction:
                conn.rollback()
            raise

    def _mark_interrupted(self) -> None:
        conn = self.db.conn
        # Look first: a read needs no write lock, so opening never blocks behind another writer
        # when there is nothing to recover.
        found = conn.execute(
            "SELECT count(*) FROM messages WHERE role = 'assistant' AND finish_reason IS NULL"
        ).fetchone()[0]
        if not found:
            return
        with self._write():
            conn.execute(
                "UPDATE messages SET finish_reason = 'interrupted' "
                "WHERE role = 'assistant' AND finish_reason IS NULL"
            )
        log.info("Marked %d unfinished replies as interrupted", found)

    # -- conversations ------------------------------------------------------------------------

    @_boundary
    def create_conversation(
        self,
        title: str = "New chat",
        *,
        model: str | None = None,
        system_prompt: str | None = None,
        engine: str | None = None,
        settings: str | None = None,
    ) -> Conversation:
        now = _now()
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO conversations "
                "(title, created_at, updated_at, model, system_prompt, engine, settings) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (title, now, now, model, system_prompt, engine, settings),
            )
        assert cursor.lastrowid is not None
        return Conversation(
            cursor.lastrowid, title, now, now, model, system_prompt, engine, settings
        )

    @_boundary
    def conversations(self) -> list[Conversation]:
        """All conversations, most recently updated first."""
        rows = self.db.conn.execute(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations ORDER BY updated_at DESC, id DESC"
        )
        return [Conversation(*row) for row in rows]

    @_boundary
    def conversation(self, conversation_id: int) -> Conversation:
        row = self.db.conn.execute(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if row is None:
            raise _conversation_not_found(conversation_id)
        return Conversation(*row)

    @_boundary
    def rename_conversation(self, conversation_id: int, title: str) -> None:
        """Set the title; a blank title becomes "New chat". Does not reorder the list."""
        title = title.strip() or "New chat"
        self._update_conversation(conversation_id, "title", title)

    @_boundary
    def set_conversation_model(
        self, conversation_id: int, model: str | None, engine: str | None = None
    ) -> None:
        """The model the conversation uses from now on: a model of this machine (engine None)
        or of the remote engine of that name."""
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE conversations SET model = ?, engine = ? WHERE id = ?",
                (model, engine, conversation_id),
            )
            if cursor.rowcount == 0:
                raise _conversation_not_found(conversation_id)

    @_boundary
    def set_conversation_system_prompt(
        self, conversation_id: int, system_prompt: str | None
    ) -> None:
        self._update_conversation(conversation_id, "system_prompt", system_prompt)

    @_boundary
    def set_conversation_settings(self, conversation_id: int, settings: str | None) -> None:
        """Its own generation settings (ChatSettings JSON); None: the app's defaults."""
        self._update_conversation(conversation_id, "settings", settings)

    def _update_conversation(self, conversation_id: int, column: str, value: str | None) -> None:
        with self._write() as conn:
            cursor = conn.execute(
                f"UPDATE conversations SET {column} = ? WHERE id = ?", (value, conversation_id)
            )
            if cursor.rowcount == 0:
                raise _conversation_not_found(conversation_id)

    @_boundary
    def delete_conversation(self, conversation_id: int) -> None:
        """Delete it with its messages and their search entries; already gone is fine.

        None of its text stays in the file's bytes: see _purge."""
        with self._write() as conn:
            # ON DELETE CASCADE removes the messages; their delete trigger updates the index.
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        self._purge_soon()

    def _purge_soon(self) -> None:
        """Purge now (see _purge), or at close when the history is too big to wait for."""
        messages = self.db.conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        if messages <= PURGE_AT_ONCE_MAX_MESSAGES:
            self._purge()
        else:
            self._purge_pending = True  # too big to merge while the user waits: on close

    @_boundary
    def delete_all_conversations(self) -> int:
        """Delete every conversation, then VACUUM: the file keeps nothing of them. Returns how
        many there were."""
        with self._write() as conn:
            count = conn.execute("SELECT count(*) FROM conversations").fetchone()[0]
            conn.execute("DELETE FROM conversations")
            for index in _SEARCH_INDEXES:
                conn.execute(f"INSERT INTO {index} ({index}) VALUES ('rebuild')")
        self.db.conn.execute("VACUUM")
        self._checkpoint()
        return int(count)

    def _purge(self) -> None:
        """After a delete: make the deleted text unrecoverable from the database's bytes.

        secure_delete zeroes the freed cells and pages of the tables, but FTS5 keeps deleted
        terms in its index segments until they are merged ('optimize' merges them all), and
        the WAL keeps old page images until a checkpoint copies the new ones in and truncates
        it. The merge rewrites the index: 110 ms at 20,000 messages here, seconds at a million,
        so past PURGE_AT_ONCE_MAX_MESSAGES it waits for close().
        """
        with self._write() as conn:
            for index in _SEARCH_INDEXES:
                conn.execute(f"INSERT INTO {index} ({index}) VALUES ('optimize')")
        self._checkpoint()

    def _checkpoint(self) -> None:
        busy, _log, _done = self.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            # Another connection (the CLI, say) reads an older snapshot: the next checkpoint,
            # at the latest when the last connection closes, finishes the job.
            log.info("The WAL checkpoint after a deletion must wait for another reader")

    # -- messages -----------------------------------------------------------------------------

    @_boundary
    def chat_history(
        self, conversation_id: int, default_system_prompt: str | None = None
    ) -> list[dict[str, str]]:
        """What the engine is given: the system prompt, then every turn with text in it.

        Replies that failed are left out; stopped, interrupted and partial ones stay, since the
        user saw them. The engine joins consecutive turns of one role.
        """
        system = self.conversation(conversation_id).system_prompt or default_system_prompt
        turns = [{"role": "system", "content": system}] if system else []
        for m in self.messages(conversation_id):
            if m.role not in ("user", "assistant") or not m.content:
                continue
            if m.role == "assistant" and m.finish_reason == FinishReason.ERROR:
                continue
            turns.append({"role": m.role, "content": m.content})
        return turns

    def messages(self, conversation_id: int) -> list[Message]:
        """The conversation's messages, oldest first (ConversationNotFound if it is gone)."""
        conn = self.db.conn
        if (
            conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            is None
        ):
            raise _conversation_not_found(conversation_id)
        # The shown branch: from the head up to the first message, parent by parent.
        rows = conn.execute(
            "WITH RECURSIVE branch(id) AS ("
            " SELECT head_id FROM conversations WHERE id = ?"
            " UNION ALL SELECT m.parent_id FROM messages m JOIN branch b ON m.id = b.id"
            " WHERE m.parent_id IS NOT NULL) "
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id IN branch ORDER BY id",
            (conversation_id,),
        ).fetchall()
        siblings: dict[int | None, list[int]] = {}
        for parent, message_id in conn.execute(
            "SELECT parent_id, id FROM messages WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        ):
            siblings.setdefault(parent, []).append(message_id)
        shown = []
        for row in rows:
            message = Message(*row)
            versions = siblings.get(message.parent_id, [message.id])
            message.version, message.versions = versions.index(message.id) + 1, len(versions)
            shown.append(message)
        return shown

    @_boundary
    def show_version(self, message_id: int, step: int) -> int:
        """Show the version ``step`` away from this one (-1: the one before), and below it the
        latest branch. Returns the message now shown in its place."""
        conn = self.db.conn
        row = conn.execute(
            "SELECT conversation_id, parent_id FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if row is None:
            raise _message_not_found(message_id)
        conversation_id, parent = row
        versions = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM messages WHERE conversation_id = ? AND parent_id IS ? ORDER BY id",
                (conversation_id, parent),
            )
        ]
        index = min(max(versions.index(message_id) + step, 0), len(versions) - 1)
        self.show_branch_of(versions[index])
        return versions[index]

    @_boundary
    def show_branch_of(self, message_id: int) -> None:
        """Show the branch through this message: it, and below it the latest replies."""
        conn = self.db.conn
        row = conn.execute(
            "SELECT conversation_id FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if row is None:
            raise _message_not_found(message_id)
        self._set_head(row[0], self._latest_below(message_id))

    def _latest_below(self, message_id: int) -> int:
        """The end of the latest branch through this message (its newest reply each turn)."""
        conn = self.db.conn
        head = message_id
        while (
            child := conn.execute(
                "SELECT max(id) FROM messages WHERE parent_id = ?", (head,)
            ).fetchone()[0]
        ) is not None:
            head = child
        return head

    def _set_head(self, conversation_id: int, message_id: int | None) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE conversations SET head_id = ? WHERE id = ?", (message_id, conversation_id)
            )

    @_boundary
    def set_head(self, conversation_id: int, message_id: int | None) -> None:
        """The next message follows this one (a regenerated reply follows the question)."""
        self._set_head(conversation_id, message_id)

    @_boundary
    def add_version(self, message_id: int, content: str) -> Message:
        """A new version of this user message (an edit): it starts a branch of its own, the
        old one stays. The new version is the head."""
        old = self._message(message_id)
        self._set_head(old.conversation_id, old.parent_id)
        return self._insert_message(old.conversation_id, old.role, content, old.model_file)

    @_boundary
    def message(self, message_id: int) -> Message:
        return self._message(message_id)

    def _message(self, message_id: int) -> Message:
        row = self.db.conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if row is None:
            raise _message_not_found(message_id)
        message = Message(*row)
        versions = [
            r[0]
            for r in self.db.conn.execute(
                "SELECT id FROM messages WHERE conversation_id = ? AND parent_id IS ? ORDER BY id",
                (message.conversation_id, message.parent_id),
            )
        ]
        if message.id in versions:
            message.version, message.versions = versions.index(message.id) + 1, len(versions)
        return message

    @_boundary
    def add_message(self, conversation_id: int, role: str, content: str) -> Message:
        """Append a finished message (usually the user's), committed before this returns."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        return self._insert_message(conversation_id, role, content, None)

    @_boundary
    def start_reply(
        self, conversation_id: int, model_file: str | None, engine: str | None = None
    ) -> Message:
        """Create the assistant row a reply streams into: content "", finish_reason None.

        ``engine``: the remote engine writing it (None: this machine).
        """
        return self._insert_message(conversation_id, "assistant", "", model_file, engine)

    def _insert_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        model_file: str | None,
        engine: str | None = None,
    ) -> Message:
        now = _now()
        with self._write() as conn:
            # Bumping first doubles as the existence check, inside the same transaction.
            bumped = conn.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)
            )
            if bumped.rowcount == 0:
                raise _conversation_not_found(conversation_id)
            # It follows the head of the branch shown, and becomes the head.
            cursor = conn.execute(
                "INSERT INTO messages "
                "(conversation_id, role, content, created_at, model_file, engine, parent_id) "
                "VALUES (?, ?, ?, ?, ?, ?, (SELECT head_id FROM conversations WHERE id = ?))",
                (conversation_id, role, content, now, model_file, engine, conversation_id),
            )
            assert cursor.lastrowid is not None
            conn.execute(
                "UPDATE conversations SET head_id = ? WHERE id = ?",
                (cursor.lastrowid, conversation_id),
            )
        return self._message(cursor.lastrowid)

    @_boundary
    def checkpoint_reply(self, message_id: int, content: str) -> None:
        """Save a streaming reply's text so far: one UPDATE by primary key.

        Does nothing if the reply is already finished (a late checkpoint must not overwrite the
        final text) or gone (its conversation was deleted while it streamed).
        """
        with self._write() as conn:
            conn.execute(
                "UPDATE messages SET content = ? WHERE id = ? AND finish_reason IS NULL",
                (content, message_id),
            )

    @_boundary
    def finish_reply(
        self,
        message_id: int,
        content: str,
        finish_reason: str,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        duration_ms: int | None = None,
        ttft_ms: int | None = None,
        error: str | None = None,
        reasoning: str | None = None,
        reasoning_ms: int | None = None,
    ) -> Message:
        """Store a reply's final text and statistics (MessageNotFound if it was deleted)."""
        if finish_reason not in ENGINE_FINISH_REASONS:
            raise ValueError(
                f"finish_reason must be one of {ENGINE_FINISH_REASONS}, not {finish_reason!r}"
            )
        now = _now()
        with self._write() as conn:
            row = conn.execute(
                "SELECT conversation_id FROM messages WHERE id = ? AND role = 'assistant'",
                (message_id,),
            ).fetchone()
            if row is None:
                raise _message_not_found(message_id)
            conn.execute(
                "UPDATE messages SET content = ?, finish_reason = ?, finished_at = ?, "
                "prompt_tokens = ?, completion_tokens = ?, duration_ms = ?, ttft_ms = ?, "
                "error = ?, reasoning = ?, reasoning_ms = ? WHERE id = ?",
                (content, finish_reason, now, prompt_tokens, completion_tokens, duration_ms,
                 ttft_ms, error, reasoning or None, reasoning_ms if reasoning else None,
                 message_id),
            )  # fmt: skip
            conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, row[0]))
        return self._message(message_id)

    @_boundary
    def set_sources(self, message_id: int, sources: list[dict[str, Any]]) -> None:
        """Record the document passages a reply was given (MessageNotFound if it is gone)."""
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE messages SET sources = ? WHERE id = ? AND role = 'assistant'",
                (json.dumps(sources, ensure_ascii=False) if sources else None, message_id),
            )
            if cursor.rowcount == 0:
                raise _message_not_found(message_id)

    @_boundary
    def set_tool_calls(self, message_id: int, calls: list[dict[str, Any]]) -> None:
        """Record the tool calls made while writing a reply (MessageNotFound if it is gone)."""
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE messages SET tool_calls = ? WHERE id = ? AND role = 'assistant'",
                (json.dumps(calls, ensure_ascii=False) if calls else None, message_id),
            )
            if cursor.rowcount == 0:
                raise _message_not_found(message_id)

    @_boundary
    def edit_message(self, message_id: int, content: str) -> None:
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE messages SET content = ? WHERE id = ?", (content, message_id)
            )
            if cursor.rowcount == 0:
                raise _message_not_found(message_id)
        self._purge_soon()  # the words edited away leave the search index too

    @_boundary
    def delete_messages_from(self, message_id: int) -> None:
        """Delete this message and everything that follows it, on every branch; the branch
        shown then goes on from its parent (through another version, if one is left). Already
        gone is fine."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT conversation_id FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            if row is not None:
                parent = conn.execute(
                    "SELECT parent_id FROM messages WHERE id = ?", (message_id,)
                ).fetchone()[0]
                # What follows it goes too, on every branch; the branch shown goes on from its
                # parent through the latest version left (the latest first message, for one).
                conn.execute(
                    "WITH RECURSIVE below(id) AS (SELECT ? UNION ALL"
                    " SELECT m.id FROM messages m JOIN below b ON m.parent_id = b.id) "
                    "DELETE FROM messages WHERE id IN below",
                    (message_id,),
                )
                if parent is None:
                    parent = conn.execute(
                        "SELECT max(id) FROM messages WHERE conversation_id = ? "
                        "AND parent_id IS NULL",
                        (row[0],),
                    ).fetchone()[0]
                head = self._latest_below(parent) if parent is not None else None
                conn.execute("UPDATE conversations SET head_id = ? WHERE id = ?", (head, row[0]))
        if row is not None:
            self._purge_soon()  # a regenerated or resent turn's old text goes for good

    # -- search and export --------------------------------------------------------------------

    @_boundary
    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Messages of every conversation matching all words of ``query``, newest first (see
        search.MessageSearch.search)."""
        return self._search.search(query, limit)

    # -- maintenance --------------------------------------------------------------------------

    @_boundary
    def integrity_check(self) -> bool:
        """True if SQLite, the foreign keys and the search index all check out."""
        conn = self.db.conn
        results = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if results != ["ok"]:
            log.error("Database integrity check failed: %s", results[:10])
            return False
        if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
            log.error("Database has messages without a conversation")
            return False
        try:
            with self._write():
                # rank = 1 also compares each index against the messages it is built from.
                for index in _SEARCH_INDEXES:
                    conn.execute(
                        f"INSERT INTO {index} ({index}, rank) VALUES ('integrity-check', 1)"
                    )
        except sqlite3.DatabaseError as exc:
            code = getattr(exc, "sqlite_errorcode", 0) or 0
            if code & 0xFF == _SQLITE_CORRUPT:
                log.error("Search index integrity check failed: %s", exc)
                return False
            raise
        return True


def _conversation_not_found(conversation_id: int) -> errors.ConversationNotFound:
    return errors.ConversationNotFound(
        f"Conversation {conversation_id} no longer exists; it may have been deleted."
    )


def _message_not_found(message_id: int) -> errors.MessageNotFound:
    return errors.MessageNotFound(
        f"Message {message_id} no longer exists; its conversation may have been deleted."
    )
