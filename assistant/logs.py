"""The log files: one per face (``assistant.log`` the GUI, ``cli.log``, ``engine.log``), rotated
by size, kept at most KEEP_DAYS, owner-only. Message text, prompts and keys never go into them:
code logs sizes, counts and file names, never what a user wrote or read.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path

from assistant import files, paths

MAX_BYTES = 2_000_000
BACKUPS = 2
KEEP_DAYS = 7
FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"


def prune(folder: Path, keep_days: float = KEEP_DAYS) -> None:
    """Delete log files not written to for ``keep_days``."""
    cutoff = time.time() - keep_days * 86400
    for path in folder.glob("*.log*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass


def file_handler(name: str) -> logging.Handler | None:
    """A rotating handler for ``logs/NAME.log``; None when the folder cannot be written."""
    try:
        folder = paths.log_dir()
        prune(folder)
        path = folder / f"{name}.log"
        files.create_private_file(path)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
        )
    except OSError:
        return None
    handler.setFormatter(logging.Formatter(FORMAT))
    return handler


def debug_wanted() -> bool:
    """``ASSISTANT_LOG_LEVEL=DEBUG``: every process of the app logs at DEBUG (the engine too)."""
    return os.environ.get("ASSISTANT_LOG_LEVEL", "").upper() == "DEBUG"


def configure(name: str, verbose: bool = False) -> None:
    """Log to ``logs/NAME.log`` (INFO, or DEBUG and stderr too when ``verbose``)."""
    handlers: list[logging.Handler] = []
    handler = file_handler(name)
    if handler is not None:
        handlers.append(handler)
    if verbose:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(
        level=logging.DEBUG if verbose or debug_wanted() else logging.INFO,
        format=FORMAT,
        handlers=handlers or [logging.NullHandler()],
        force=True,
    )
