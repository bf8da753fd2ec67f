"""Writing Assistant's own files: atomically (temp file + os.replace), owner-only."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


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
