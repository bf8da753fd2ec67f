"""The terminal face, run as a user would: a real process, a real database, a real model."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from assistant import __version__


def run_cli(
    *args: str, stdin: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        env=os.environ.copy(),
        check=False,
    )


def messages(home: Path) -> list[tuple[int, str, str, str | None]]:
    with sqlite3.connect(home / "assistant.db") as db:
        return db.execute(
            "select conversation_id, role, content, finish_reason from messages order by id"
        ).fetchall()


def test_an_empty_reply_is_never_silent(assistant_home: Path) -> None:
    """A model that ends its reply at once: the CLI says so (the reply itself stays empty)."""
    from tests.tinymodel import CHATML_TEMPLATE, write_tiny_model

    model = write_tiny_model(
        assistant_home / "models" / "eos.gguf", chat_template=CHATML_TEMPLATE, eos_first=True
    )
    result = run_cli("chat", "-m", str(model), "Once upon a time")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    assert "note: the model ended its reply without any text" in result.stderr
    [*_, reply] = messages(assistant_home)
    assert reply[1:] == ("assistant", "", "stop")


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"assistant {__version__}"


@pytest.mark.starter
def test_chat_twice_in_one_conversation_reuses_the_prefix(
    starter_model: Path, assistant_home: Path
) -> None:
    first = run_cli("chat", "--stats", "--seed", "1", "-n", "12", "The capital of France is")
    assert first.returncode == 0, first.stderr
    conversation = int(re.search(r"conversation (\d+):", first.stderr).group(1))
    first_prompt = int(re.search(r"prompt (\d+) tokens \((\d+) reused\)", first.stderr).group(1))

    second = run_cli(
        "chat",
        "--stats",
        "--seed",
        "1",
        "-n",
        "12",
        "-c",
        str(conversation),
        "And the capital of Italy is",
    )
    assert second.returncode == 0, second.stderr
    match = re.search(r"prompt (\d+) tokens \((\d+) reused\)", second.stderr)
    prompt_tokens, reused = int(match.group(1)), int(match.group(2))
    # Turn 2's prompt holds all of turn 1 (its prompt and reply): that prefix comes from the
    # saved KV cache instead of being evaluated again.
    assert reused >= first_prompt, second.stderr
    assert prompt_tokens > reused

    rows = messages(assistant_home)
    assert [(r[0], r[1]) for r in rows] == [(conversation, "user"), (conversation, "assistant")] * 2
    assert rows[0][2] == "The capital of France is"
    assert rows[2][2] == "And the capital of Italy is"
    assert all(r[3] in ("stop", "length") for r in rows if r[1] == "assistant")
    assert rows[1][2].strip() and rows[1][2].strip() in first.stdout

    listing = run_cli("chats")
    assert listing.returncode == 0
    assert "The capital of France is" in listing.stdout


@pytest.mark.starter
def test_self_test_passes(starter_model: Path) -> None:
    result = run_cli("--self-test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("self-test passed:")
    assert "; tools ok;" in result.stdout
    assert len(result.stdout.strip().splitlines()) == 1


def test_self_test_fails_in_one_line(assistant_home: Path) -> None:
    bad = assistant_home / "bad.gguf"
    bad.write_text("not a model")
    result = run_cli("--self-test", "--model", str(bad))
    assert result.returncode == 1
    assert result.stdout.startswith("self-test failed:")
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("kind", ["truncated", "text", "missing"])
def test_bad_model_files_give_one_clear_line(
    kind: str, tmp_path: Path, assistant_home: Path
) -> None:
    from tests.tinymodel import write_tiny_model

    path = tmp_path / f"{kind}.gguf"
    if kind == "truncated":
        write_tiny_model(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "text":
        path.write_text("This is a text file, not a model.\n")
    result = run_cli("chat", "--model", str(path), "Hello")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("assistant: "), result.stderr
    if kind != "missing":
        assert "truncated" in lines[0].lower() or "not a gguf" in lines[0].lower(), lines[0]
    else:
        assert "does not exist" in lines[0].lower()


def test_unknown_conversation_is_one_line(starter_model: Path) -> None:
    result = run_cli("chat", "-c", "999", "Hello")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("assistant: ")
    assert "Traceback" not in result.stderr


def test_export_and_search_on_an_empty_profile() -> None:
    result = run_cli("search", "anything")
    assert result.returncode == 0
    assert result.stdout == ""


def test_saved_kv_caches_are_pruned(tmp_path: Path, assistant_home: Path) -> None:
    from tests.tinymodel import CHATML_TEMPLATE, write_tiny_model

    model = write_tiny_model(tmp_path / "tiny.gguf", chat_template=CHATML_TEMPLATE)
    for i in range(5):
        result = run_cli("chat", "--model", str(model), "-n", "4", f"Question {i}")
        assert result.returncode == 0, result.stderr
    states = sorted(p.name for p in (assistant_home / "kv-cache").glob("*.state"))
    assert states == [f"conversation-{i}.state" for i in (3, 4, 5)]


def test_a_closed_pipe_still_finishes_the_reply(tmp_path: Path, assistant_home: Path) -> None:
    """`assistant chat ... | head -c 20`: the reader goes away mid-reply; the reply is stored
    as stopped, never left "streaming"."""
    from tests.tinymodel import CHATML_TEMPLATE, write_tiny_model

    model = write_tiny_model(tmp_path / "tiny.gguf", chat_template=CHATML_TEMPLATE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "chat", "--model", str(model), "-n", "2000", "Hi"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(20)) == 20
    proc.stdout.close()  # like `head` exiting
    proc.wait(timeout=120)
    assert "Traceback" not in proc.stderr.read().decode()
    rows = messages(assistant_home)
    assert [r[1] for r in rows] == ["user", "assistant"]
    assert rows[1][3] in ("cancelled", "length") and len(rows[1][2]) >= 20


def test_cli_never_marks_a_reply_streaming_elsewhere_as_interrupted(assistant_home: Path) -> None:
    from assistant.conversations.storage import Store

    store = Store()  # stands for the app, streaming a reply right now
    c = store.create_conversation("live")
    store.add_message(c.id, "user", "hello")
    reply = store.start_reply(c.id, "m.gguf")
    for args in (["chats"], ["search", "hello"], ["export", str(c.id)]):
        assert run_cli(*args).returncode == 0
    assert store.message(reply.id).finish_reason is None
    store.checkpoint_reply(reply.id, "still streaming")
    assert store.message(reply.id).content == "still streaming"
    store.close()


def test_the_top_level_model_option_goes_with_the_self_test_only() -> None:
    result = run_cli("--model", "some.gguf")
    assert result.returncode == 2
    assert "--model goes with --self-test" in result.stderr
