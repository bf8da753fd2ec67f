"""llama.cpp's log, routed into Python logging (logger "llama_cpp").

llama-cpp-python's own callback prints to stderr, and ``Llama(verbose=False)`` silences llama.cpp
by redirecting file descriptors 1 and 2 of the whole process, which breaks windowed apps. Instead
one ctypes callback, kept alive at module level for the life of the process, turns each line into
a logging record. llama.cpp's INFO is load-time chatter (hundreds of lines per model), so it is
logged at DEBUG; its DEBUG goes to level 5, below DEBUG.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import threading
from collections import deque

import llama_cpp

logger = logging.getLogger("llama_cpp")

TRACE = 5
# enum ggml_log_level: NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5 (continues the last
# line). llama-cpp-python's own _logger.py still has the older order.
_LEVELS = {0: logging.INFO, 1: TRACE, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_CONT = 5

_lock = threading.Lock()
_pending: list[str] = []
_pending_level = logging.DEBUG
_installed = False
# The last few error and warning lines: the engine quotes them when llama.cpp fails to load a
# model, since llama.cpp reports why only through its log.
recent_problems: deque[str] = deque(maxlen=8)


def _emit(level: int, text: str) -> None:
    if level >= logging.WARNING:
        recent_problems.append(text)
    if logger.isEnabledFor(level):
        logger.log(level, "%s", text)


def _on_log(level: int, text: bytes | None, _user_data: ctypes.c_void_p) -> None:
    global _pending_level
    try:
        piece = (text or b"").decode("utf-8", errors="replace")
        with _lock:
            if level != _CONT:
                _pending_level = _LEVELS.get(level, logging.INFO)
            _pending.append(piece)
            if not piece.endswith("\n"):
                return  # a line in several pieces: wait for its end
            line = "".join(_pending).rstrip("\n")
            _pending.clear()
            log_level = _pending_level
        if line.strip():
            if log_level == logging.ERROR and "failed to decode, ret = 2" in line:
                log_level = logging.DEBUG  # 2 = aborted: the user pressed stop, not a failure
            _emit(log_level, line)
    except Exception:  # noqa: BLE001 - an exception must never unwind into C
        pass


# Module level, so the function pointer llama.cpp holds stays valid for the whole process.
_callback = llama_cpp.llama_log_callback(_on_log)


def install() -> None:
    """Route llama.cpp's log into ``logging``; idempotent, call before the first model load."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
    # At interpreter exit Python callbacks may no longer be callable: hand logging back to
    # llama.cpp's default (stderr) before that.
    atexit.register(_uninstall)


def _uninstall() -> None:
    global _installed
    llama_cpp.llama_log_set(ctypes.cast(None, llama_cpp.llama_log_callback), ctypes.c_void_p(0))  # type: ignore[arg-type]  # a NULL function pointer
    _installed = False
