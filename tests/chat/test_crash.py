"""A reply streaming when the process is killed (SIGKILL) survives in the database."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.tinymodel import write_streaming_model

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

PROMPT = "Write a long story about a lighthouse keeper and the sea."


def test_sigkill_while_streaming_keeps_the_reply(tmp_path: Path, assistant_home: Path) -> None:
    # A real model that never ends its reply by itself and streams a few hundred tokens a second
    # for about 20 s: a small random-weight llama (the starter model's replies are too short).
    model = write_streaming_model(tmp_path / "streamer.gguf")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "assistant",
            "chat",
            "--model",
            str(model),
            "--ctx",
            "8192",
            "-n",
            "8000",
            PROMPT,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    # (arrival time, text) of everything the process printed, read byte by byte as it streams.
    received: list[tuple[float, bytes]] = []

    def reader() -> None:
        assert proc.stdout is not None
        while chunk := os.read(proc.stdout.fileno(), 4096):
            received.append((time.monotonic(), chunk))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (
            not received or time.monotonic() - received[0][0] < 3
        ):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.05)
        assert received, "the reply never started streaming"
        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    thread.join(timeout=5)

    db = sqlite3.connect(assistant_home / "assistant.db")
    try:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        rows = db.execute(
            "select role, content, finish_reason from messages order by id"
        ).fetchall()
    finally:
        db.close()
    assert rows[0][0] == "user" and rows[0][1] == PROMPT
    assert len(rows) == 2 and rows[1][0] == "assistant"
    stored = rows[1][1]

    def streamed_by(moment: float) -> str:
        return b"".join(c for at, c in received if at <= moment).decode("utf-8", "replace")

    one_second_before = streamed_by(killed_at - 1.0).strip()
    assert len(streamed_by(killed_at)) > 20, "too little streamed to judge"
    # Everything that reached the terminal up to a second before the kill is in the database.
    assert stored.strip().startswith(one_second_before[:-5] if one_second_before else ""), (
        stored,
        one_second_before,
    )
    assert len(stored) >= len(one_second_before) - 5
