"""The core never imports Qt: every module outside assistant/ui loads without PySide6."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import assistant

PACKAGE = Path(assistant.__file__).parent


def core_modules() -> list[str]:
    """Every module of the package outside assistant/ui, subpackages (the engine) included."""
    names = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] == "ui":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(("assistant", *parts)))
    return sorted(names)


def test_core_modules_found() -> None:
    expected = {
        "assistant.conversations.storage",
        "assistant.chat.turn",
        "assistant.clients.engine_client",
        "assistant.cli.main",
        "assistant.engine",
        "assistant.engine.llama",
        "assistant.engine.server",
        "assistant.clients.supervisor",
    }
    assert expected <= set(core_modules())


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
