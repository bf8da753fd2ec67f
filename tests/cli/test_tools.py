"""``assistant tools`` and ``assistant chat --tools`` as a person runs them: a real engine and
model, the reference memory server from npm, each call approved (or not) on the terminal,
and the calls kept with the reply and exported."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.test_commands import run_cli
from tests.tools.test_mcp_servers import SLOW, memory_server

pytestmark = pytest.mark.starter

ASK = "Remember that Ada Lovelace wrote the first program."


def tool_calls(home: Path) -> list[dict]:
    with sqlite3.connect(home / "assistant.db") as db:
        row = db.execute("SELECT tool_calls FROM messages WHERE role = 'assistant' "
                         "ORDER BY id DESC LIMIT 1").fetchone()  # fmt: skip
    return json.loads(row[0]) if row and row[0] else []


@pytest.fixture
def configured(tmp_path: Path, starter_model: Path, assistant_home: Path) -> Path:
    store = tmp_path / "memory.json"
    config = tmp_path / "claude_desktop_config.json"
    config.write_text(json.dumps({"mcpServers": {
        "memory": {"command": memory_server(), "env": {"MEMORY_FILE_PATH": str(store)}},
        "broken": {"command": str(tmp_path / "nothing-here")}}}))  # fmt: skip
    imported = run_cli("tools", "import", str(config))
    assert imported.returncode == 0 and "Added memory, broken" in imported.stdout
    return store


def test_list_says_what_runs_and_what_does_not(configured: Path) -> None:
    listed = run_cli("tools", "list")
    assert "memory/create_entities" in listed.stdout
    assert "not available: broken: could not start" in listed.stdout


def test_an_approved_call_runs_is_stored_and_exported(configured: Path, assistant_home) -> None:
    r = run_cli("chat", "--tools", "--tool-choice", "memory/create_entities", "-n", "300",
                "--temperature", "0", ASK, stdin="y\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "→ memory/create_entities {" in r.stderr and "Run it?" in r.stderr
    assert "← memory/create_entities" in r.stderr
    assert "note: tool server broken: could not start" in r.stderr
    calls = tool_calls(assistant_home)
    assert calls[0]["tool"] == "memory/create_entities" and calls[0]["status"] == "ran"
    assert configured.exists() and json.loads(calls[0]["arguments"])["entities"]
    exported = run_cli("export", "1").stdout
    assert "**Tool calls**" in exported and "`memory/create_entities`" in exported


def test_a_declined_call_does_not_run(configured: Path, assistant_home) -> None:
    r = run_cli("chat", "--tools", "--tool-choice", "memory/create_entities", "-n", "300",
                "--temperature", "0", ASK, stdin="n\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "declined" in r.stderr
    assert tool_calls(assistant_home)[0]["status"] == "denied"
    assert not configured.exists()  # the memory server never wrote its file


def test_always_allowed_is_not_asked_again(configured: Path, assistant_home) -> None:
    run_cli("chat", "--tools", "--tool-choice", "memory/read_graph", "-n", "200", ASK,
            stdin="a\n")  # fmt: skip
    again = run_cli("chat", "--tools", "--tool-choice", "memory/read_graph", "-n", "200", ASK,
                    stdin="")  # fmt: skip
    assert "Run it?" not in again.stderr and "← memory/read_graph" in again.stderr
    assert "memory/read_graph (always allowed)" in run_cli("tools", "list").stdout


def test_a_call_that_fails_is_told_to_the_model(tmp_path: Path, starter_model: Path,
                                                assistant_home: Path) -> None:  # fmt: skip
    run_cli("tools", "add", "slow", "--", sys.executable, SLOW)
    r = run_cli("chat", "--tools", "--tool-choice", "slow/fail", "-n", "200", "--temperature", "0",
                "Try it.",
                stdin="y\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "← slow/fail (error): Error executing tool fail" in r.stderr
    assert tool_calls(assistant_home)[0]["status"] == "failed"


def test_without_servers_it_says_how_to_add_one(starter_model: Path) -> None:
    r = run_cli("chat", "--tools", "hello")
    assert r.returncode == 1 and "assistant tools add NAME" in r.stderr


def test_ctrl_c_at_the_question_declines_and_ends_the_reply(configured: Path,
                                                            assistant_home) -> None:  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "chat", "--tools", "--tool-choice",
         "memory/create_entities", "-n", "300", "--temperature", "0", ASK],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ.copy(),
        # Ctrl-C as at a terminal (a run started in the background inherits SIGINT ignored).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    assert proc.stderr is not None
    asked = ""
    deadline = time.monotonic() + 240
    while "Run it?" not in asked and time.monotonic() < deadline:
        asked += proc.stderr.read(1)  # the question waits for an answer that never comes
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, asked + err  # as any reply stopped with Ctrl-C
    assert tool_calls(assistant_home)[0]["status"] == "denied"
    assert not configured.exists()  # nothing ran
    with sqlite3.connect(assistant_home / "assistant.db") as db:
        (reason,) = db.execute("SELECT finish_reason FROM messages WHERE role = 'assistant'"
                               " ORDER BY id DESC LIMIT 1").fetchone()  # fmt: skip
    assert reason == "cancelled"
