"""llama.cpp's backends, loaded before the first model.

A native build links its CPU backend in. A portable build (``installers/build.sh``: no
``-march=native``, ``GGML_BACKEND_DL`` and ``GGML_CPU_ALL_VARIANTS``) ships one CPU module per
instruction set (``libggml-cpu-haswell.so``, ``-skylakex``, ``-sapphirerapids``...) and ggml picks
the best one this CPU runs at load time. ggml looks for those modules next to the executable,
which for Python is the interpreter's folder; here it is told to look beside llama.cpp itself.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from pathlib import Path

log = logging.getLogger(__name__)

_lock = threading.Lock()
_done = False


def library_dir() -> Path:
    import llama_cpp

    return Path(llama_cpp.__file__).resolve().parent / "lib"


def is_portable_build() -> bool:
    """Whether the installed llama.cpp chooses its CPU backend at run time."""
    return any(library_dir().glob("*ggml-cpu-*"))


def ensure_loaded() -> None:
    """Load llama.cpp's backends once per process (idempotent, thread-safe)."""
    global _done
    with _lock:
        if _done:
            return
        _done = True
        if not is_portable_build():
            return
        from llama_cpp._ggml import libggml

        load = libggml.ggml_backend_load_all_from_path
        load.argtypes = [ctypes.c_char_p]
        load.restype = None
        load(str(library_dir()).encode())
        log.info("Loaded llama.cpp's backends from %s (portable build)", library_dir())
