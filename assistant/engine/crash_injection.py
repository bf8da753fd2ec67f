"""A test-only way to crash the engine process natively, so crash recovery is tested on every
CPU (the AMX crash it stands for happens only on some).

``ASSISTANT_TEST_CRASH=STAGE`` makes the process die of a real SIGSEGV (a NULL read in C) when it
reaches STAGE: ``load`` (loading a model), ``decode`` (the first prompt decode), ``generate``
(after the first generated token), ``probe`` (the CPU probe), ``gpu-load`` (loading a model
with layers on a GPU, as a broken GPU driver would) or ``hardware`` (the child that looks for
GPUs for the app, machine.detect_in_child). The crash happens only while the
engine runs its normal configuration (fallback step 0), as the AMX crash does, unless the value
ends in ``:always``.
"""

from __future__ import annotations

import ctypes
import os

ENV = "ASSISTANT_TEST_CRASH"


def maybe_crash(stage: str, *, step: int = 0) -> None:
    value = os.environ.get(ENV, "")
    if not value:
        return
    wanted, _, mode = value.partition(":")
    if wanted == stage and (mode == "always" or step == 0):
        ctypes.string_at(0)  # SIGSEGV (an access violation on Windows)
