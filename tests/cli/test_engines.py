"""`assistant engines ...` and `assistant chat --engine`, run as a user would: real processes,
llama-cpp-python's own server as the remote engine (through the fault proxy), a real database."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.test_commands import run_cli
from tests.conftest import db_rows
from tests.remote_servers import FAULTS, FaultProxy, free_port

pytestmark = pytest.mark.starter


def test_engines_add_list_and_rm(proxy: FaultProxy, assistant_home: Path) -> None:
    added = run_cli("engines", "add", "gpu-box", proxy.url.removesuffix("/v1"), "--api-key", "sk-1")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == f"added gpu-box: llama-cpp-python, 1 model at {proxy.url}"
    assert proxy.requests[-1].headers["Authorization"] == "Bearer sk-1"

    listed = run_cli("engines", "list", "--models")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["local", "this", "machine"]
    assert lines[1].split() == ["gpu-box", proxy.url, "llama-cpp-python,", "1", "model"]
    assert lines[2].strip() == "gpu-box / smollm2-135m"
    assert "sk-1" not in listed.stdout + added.stdout

    proxy.always("refuse")
    down = json.loads(run_cli("engines", "list", "--json").stdout)
    assert down["engines"][1]["reachable"] is False
    assert "closed the connection without answering" in down["engines"][1]["problem"]

    from_stdin = run_cli("engines", "add", "b", proxy.url, "--api-key", "-", stdin="sk-2\n")
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert proxy.requests[-1].headers["Authorization"] == "Bearer sk-2"
    assert run_cli("engines", "rm", "b").returncode == 0

    duplicate = run_cli("engines", "add", "GPU-BOX", "http://127.0.0.1:1")
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip() == "assistant: There is already an engine named GPU-BOX."
    assert run_cli("engines", "rm", "gpu-box").returncode == 0
    assert "gpu-box" not in run_cli("engines", "list").stdout


def test_adding_a_bad_url_says_what_is_wrong(assistant_home: Path) -> None:
    result = run_cli("engines", "add", "box", "box:8080")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("assistant: 'box:8080' is not an engine address")
    unreachable = run_cli("engines", "add", "later", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 0  # kept: it may be switched on later
    assert "it does not answer now: Can't reach later" in unreachable.stdout


def test_a_chat_moves_from_this_machine_to_a_remote_engine_and_back(
    proxy: FaultProxy, starter_model: Path, assistant_home: Path
) -> None:
    assert run_cli("engines", "add", "gpu-box", proxy.url).returncode == 0
    first = run_cli("chat", "--stats", "-n", "8", "--seed", "1", "The capital of France is")
    assert first.returncode == 0, first.stderr
    conversation = re.search(r"conversation (\d+):", first.stderr).group(1)
    first_reply = db_rows(assistant_home, "select content from messages where role='assistant'")[0][
        0
    ]

    second = run_cli("chat", "-c", conversation, "--engine", "gpu-box", "-n", "8", "And Spain?")
    assert second.returncode == 0, second.stderr
    sent = proxy.chat_requests()[-1].body
    assert sent["model"] == "smollm2-135m"  # the engine's only model
    assert [m["content"] for m in sent["messages"][1:]] == [
        "The capital of France is", first_reply, "And Spain?"
    ]  # fmt: skip
    listed = run_cli("chats").stdout
    assert "[gpu-box / smollm2-135m]" in listed

    # No --engine: the conversation's own engine (the remote one) is used again.
    third = run_cli("chat", "-c", conversation, "-n", "4", "And Italy?")
    assert third.returncode == 0, third.stderr
    assert len(proxy.chat_requests()) == 2

    back = run_cli("chat", "-c", conversation, "--engine", "local", "--stats", "-n", "4", "Thanks")
    assert back.returncode == 0, back.stderr
    back_prompt = int(re.search(r"prompt (\d+) tokens", back.stderr).group(1))
    first_prompt = int(re.search(r"prompt (\d+) tokens", first.stderr).group(1))
    assert back_prompt > first_prompt + 10  # the remote turns came along
    writers = db_rows(
        assistant_home, "select engine, model_file from messages where role='assistant' order by id"
    )
    assert writers == [
        (None, starter_model.name), ("gpu-box", "smollm2-135m"), ("gpu-box", "smollm2-135m"),
        (None, starter_model.name),
    ]  # fmt: skip
    assert db_rows(assistant_home, "select engine, model from conversations") == [
        (None, starter_model.name)
    ]
    exported = json.loads(run_cli("export", conversation, "--format", "json").stdout)
    assert [m["engine"] for m in exported["messages"] if m["role"] == "assistant"] == [
        None, "gpu-box", "gpu-box", None
    ]  # fmt: skip


@pytest.mark.parametrize(("fault", "says", "partial"), FAULTS)
def test_each_fault_is_one_sentence_and_keeps_the_message_and_partial_reply(
    proxy: FaultProxy, assistant_home: Path, fault: str, says: str, partial: bool
) -> None:
    assert run_cli("engines", "add", "gpu-box", proxy.url).returncode == 0
    proxy.always(fault)
    result = run_cli("chat", "--engine", "gpu-box", "-m", "smollm2-135m", "-n", "16", "Hello")
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if not line.startswith("note:")]
    assert len(error_lines) == 1 and error_lines[0].startswith(f"assistant: {says}")
    stored = db_rows(
        assistant_home, "select role, content, finish_reason, error, engine from messages"
    )
    assert stored[0] == ("user", "Hello", None, None, None)
    role, content, reason, error, engine = stored[1]
    assert (role, reason, engine) == ("assistant", "error", "gpu-box")
    assert error.startswith(says)
    assert bool(content) == partial
    if partial:
        assert result.stdout.strip() and content.strip() == result.stdout.strip()


def test_an_unreachable_engine_and_local_only_are_refused_clearly(assistant_home: Path) -> None:
    port = free_port()
    assert run_cli("engines", "add", "gone", f"http://127.0.0.1:{port}").returncode == 0
    result = run_cli("chat", "--engine", "gone", "-m", "m", "Hello")
    assert result.returncode == 1
    assert result.stderr.strip().startswith(
        f"assistant: Can't reach gone at http://127.0.0.1:{port}/v1"
    )
    settings = json.loads((assistant_home / "settings.json").read_text())
    settings["local_only"] = True
    (assistant_home / "settings.json").write_text(json.dumps(settings))
    refused = run_cli("chat", "--engine", "gone", "-m", "m", "Hello again")
    assert refused.returncode == 1 and "“Local only” is on" in refused.stderr
    assert "hidden: “Local only” is on" in run_cli("engines", "list").stdout
    unknown = run_cli("chat", "--engine", "nope", "Hello")
    assert unknown.returncode == 1
