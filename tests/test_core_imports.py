"""The core never imports Qt: every module outside assistant/ui loads without PySide6."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import assistant

PACKAGE = Path(assistant.__file__).parent


def core_modules() -> list[str]:
    return sorted(
        "assistant." + path.stem if path.stem != "__init__" else "assistant"
        for path in PACKAGE.glob("*.py")
    )


def test_core_modules_found() -> None:
    assert {"assistant.storage", "assistant.engine", "assistant.cli"} <= set(core_modules())


def test_core_imports_without_qt() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {core_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "qt = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6')))\n"
        "print(','.join(qt))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"Qt loaded by the core: {result.stdout}"
