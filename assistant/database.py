"""An SQLite file opened as every Assistant database is: owner-only, foreign keys enforced,
deleted text overwritten, WAL journal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from assistant import files


def connect(
    path: Path, *, busy_timeout: float, check_same_thread: bool = True
) -> sqlite_utils.Database:
    """Open ``path`` (created owner-only if new); sqlite3.Error if SQLite cannot."""
    # Owner-only before SQLite opens it: its -wal and -shm files take the database's mode.
    files.create_private_file(path)
    # timeout= installs SQLite's busy handler (same as PRAGMA busy_timeout).
    conn = sqlite3.connect(path, timeout=busy_timeout, check_same_thread=check_same_thread)
    try:
        db = sqlite_utils.Database(conn)
        conn.execute("PRAGMA foreign_keys = ON")  # per connection; needed for CASCADE
        # Deleted text is overwritten, not left in free pages (not every SQLite build defaults
        # to it: python.org's Windows and macOS ones do not).
        conn.execute("PRAGMA secure_delete = ON")
        # Sorts and VACUUM copy rows into temporary files (in /var/tmp, outside the data
        # folder): keep them in memory. And truncate the WAL back after each checkpoint.
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA journal_size_limit = 0")
        db.enable_wal()
        # In WAL mode NORMAL never corrupts the file; a power cut may lose the last commits,
        # and it makes the once-a-second reply checkpoint cost no fsync.
        conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return db
