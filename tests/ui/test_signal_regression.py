"""PySide6 6.12 on Python 3.11 aborts after a few hundred Signal(bool) emits; we need 3.12+."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_emitting_a_bool_signal_20000_times_survives() -> None:
    # In a child process: the failure mode is an abort that would take pytest down with it.
    code = textwrap.dedent(
        """
        from PySide6.QtCore import QCoreApplication, QObject, Signal, Slot

        class Emitter(QObject):
            toggled = Signal(bool)

        class Receiver(QObject):
            def __init__(self):
                super().__init__()
                self.count = 0

            @Slot(bool)
            def on_toggled(self, value):
                self.count += 1

        app = QCoreApplication([])
        emitter, receiver = Emitter(), Receiver()
        emitter.toggled.connect(receiver.on_toggled)
        for i in range(20_000):
            emitter.toggled.emit(i % 2 == 0)
        print(receiver.count)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "20000"
