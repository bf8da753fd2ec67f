"""Where Assistant keeps its files.

Everything lives under one data directory from platformdirs. ``ASSISTANT_HOME`` relocates all of
it (tests, portable installs) and is read on every call so that tests can point it elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from assistant import APP_NAME

_private: set[Path] = set()  # folders already made owner-only in this process


def _private_dir(path: Path) -> Path:
    """Create ``path`` (0700) if needed; make it owner-only once per process."""
    if path not in _private:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            os.chmod(path, 0o700)
        except OSError:
            pass  # a filesystem without modes, or a folder the user owns differently
        _private.add(path)
    return path


def data_dir() -> Path:
    """The root of everything Assistant stores; created on first use, owner-only (0700)."""
    home = os.environ.get("ASSISTANT_HOME")
    path = Path(home) if home else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return _private_dir(path)


def _subdir(name: str) -> Path:
    return _private_dir(data_dir() / name)


def models_dir() -> Path:
    """Installed GGUF files: downloads, imports and the starter model."""
    return _subdir("models")


def embedding_models_dir() -> Path:
    """Embedding GGUFs (documents): apart from the chat models, which the model picker lists."""
    return _subdir("embedding-models")


def documents_path() -> Path:
    """The documents' database: collections, their files' text chunks and vectors."""
    return data_dir() / "documents.db"


def partial_dir() -> Path:
    """Downloads in progress, kept across restarts so that they resume."""
    return _subdir("partial")


def gpu_modules_dir(llama_version: str) -> Path:
    """GPU modules built for this llama-cpp-python version (installers/gpu_module.sh); not
    created here: most installs have none."""
    return data_dir() / "gpu-modules" / llama_version


def log_dir() -> Path:
    return _subdir("logs")


def database_path() -> Path:
    return data_dir() / "assistant.db"


def settings_path() -> Path:
    return data_dir() / "settings.json"


def lock_path() -> Path:
    """The single-instance lock file: one process owns the database at a time."""
    return data_dir() / "assistant.lock"


def cache_dir() -> Path:
    """What was learnt about this machine (the CPU probe): safe to delete, rebuilt when needed.

    ``ASSISTANT_CACHE`` relocates it; else it follows ``ASSISTANT_HOME`` when that is set.
    """
    override = os.environ.get("ASSISTANT_CACHE")
    if override:
        path = Path(override)
    elif os.environ.get("ASSISTANT_HOME"):
        path = data_dir() / "cache"
    else:
        path = Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    return _private_dir(path)


def kv_cache_dir() -> Path:
    """Saved KV caches: they hold a conversation's tokens, so they go when it goes."""
    return _subdir("kv-cache")


def kv_state_path(conversation_id: int) -> Path:
    """The KV cache an engine saves for ``assistant chat`` turns of one conversation."""
    return kv_cache_dir() / f"conversation-{conversation_id}.state"


def engine_file() -> Path:
    """Where a running engine of this data directory says how to reach it (URL, key, pid)."""
    return data_dir() / "engine.json"


def engine_configs_path() -> Path:
    """The engine configuration that last worked, per llama.cpp build, CPU and model."""
    return data_dir() / "engine-configs.json"


def assistant_command(*args: str) -> list[str]:
    """The command line that runs ``assistant ARGS`` in a child process: this interpreter with
    ``-m assistant``, or the bundled executable itself in an installed (PyInstaller) app."""
    import sys

    if getattr(sys, "frozen", False):
        return [sys.executable, *args]
    return [sys.executable, "-m", "assistant", *args]
