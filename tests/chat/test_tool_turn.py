"""A reply with tools, below the window and the terminal: rounds of calls against the real
engine and model and a real MCP server (the SDK's), streamed as a chat reply is."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from assistant.chat import tool_turn
from assistant.records import FinishReason, GenerationParams
from assistant.tools.mcp_servers import McpTools, parse_config
from tests.tools.test_mcp_servers import SLOW

pytestmark = pytest.mark.starter


@pytest.fixture(scope="module")
def engine(starter_engine) -> Iterator:
    supervisor, model = starter_engine
    mcp = McpTools(parse_config({"slow": {"command": sys.executable,
                                          "args": [SLOW, "--echo-only"]}})).start()  # fmt: skip
    try:
        yield supervisor.client(), mcp, str(model)
    finally:
        mcp.close()


def reply(engine, approve=lambda tool, args: tool_turn.ONCE, **kwargs):
    client, mcp, model = engine
    shown: list[str] = []
    logs: list[list[dict]] = []
    completion = tool_turn.reply(
        client, mcp, [{"role": "user", "content": "Say hello back to me."}],
        GenerationParams(max_tokens=60, temperature=0.0, seed=1), model,
        approve=approve, allowed=set(), on_calls=logs.append, on_text=shown.append, **kwargs,
    )  # fmt: skip
    return completion, shown, logs


def test_the_rounds_stream_and_the_reply_is_what_was_shown(engine) -> None:
    completion, shown, logs = reply(engine, first_choice="required")
    assert logs and logs[-1][0]["tool"] == "slow/echo" and logs[-1][0]["status"] == "ran"
    assert completion.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert len(shown) > 1  # piece by piece, not the whole text at the end
    assert "".join(shown) == completion.text and completion.text.strip()
    assert completion.completion_tokens > 0 and completion.model_file


def test_stop_while_asked_runs_nothing_and_ends_the_reply(engine) -> None:
    stop = threading.Event()

    def approve(tool, arguments: str) -> str:
        stop.set()  # Stop pressed while the dialog was open; then "Allow once"
        return tool_turn.ONCE

    completion, _, logs = reply(engine, approve, first_choice="required", stop=stop)
    assert completion.finish_reason == FinishReason.CANCELLED
    assert [entry["status"] for entry in logs[-1]] == ["denied"]
    assert len(logs) == 1  # no second round after the stop
