"""Assistant's own files: owner-only (0700 folders, 0600 files) and written atomically.

Every process of the app (the GUI, the CLI, the engine) starts with ``make_private_by_default``,
so whatever SQLite, llama.cpp or logging create is owner-only too, whatever the user's umask;
the few places that create files also set the mode themselves, for code run without main().
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

PRIVATE_UMASK = 0o077


def make_private_by_default() -> None:
    """New files 0600 and folders 0700 from here on, in this process and its children."""
    os.umask(PRIVATE_UMASK)


def make_private(path: Path) -> None:
    """0700 for a folder, 0600 for a file: best effort (some filesystems have no modes)."""
    try:
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
    except OSError:
        pass


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only if it is missing (before another library opens
    it with the umask's mode); an existing file is made owner-only."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError:
        return
    make_private(path)


def write_private_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step: a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    try:
        os.chmod(tmp, 0o600)  # mkstemp's default too, but say it: keys and tokens live here
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_private_json(path: Path, data: object) -> None:
    write_private_text(path, json.dumps(data, indent=2))
