"""A reply with tools, below the window and the terminal: rounds of calls against the real
engine and model and a real MCP server (the SDK's), streamed as a chat reply is."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.chat import tool_turn
from assistant.clients.engine_client import EngineClient
from assistant.clients.supervisor import Supervisor
from assistant.records import FinishReason, GenerationParams
from assistant.tools.mcp_servers import McpTools, parse_config
from tests.conftest import install_model
from tests.tools.test_mcp_servers import SLOW

pytestmark = pytest.mark.starter


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, starter_model_file: Path) -> Iterator:
    home = tmp_path_factory.mktemp("home")
    model = install_model(starter_model_file, home)
    supervisor = Supervisor(env={**os.environ, "ASSISTANT_HOME": str(home)}, announce=False,
                            n_ctx=2048)  # fmt: skip
    client = supervisor.start()
    client.load(model.name, n_ctx=2048, n_gpu_layers=0)
    mcp = McpTools(parse_config({"slow": {"command": sys.executable,
                                          "args": [SLOW, "--echo-only"]}})).start()  # fmt: skip
    try:
        yield client, mcp, str(model)
    finally:
        mcp.close()
        supervisor.stop()


def reply(engine, **kwargs):
    client, mcp, model = engine
    client: EngineClient
    shown: list[str] = []
    logs: list[list[dict]] = []
    completion = tool_turn.reply(
        client, mcp, [{"role": "user", "content": "Say hello back to me."}],
        GenerationParams(max_tokens=60, temperature=0.0, seed=1), model,
        approve=lambda tool, args: tool_turn.ONCE, allowed=set(), on_calls=logs.append,
        on_text=shown.append, **kwargs,
    )  # fmt: skip
    return completion, shown, logs


def test_the_rounds_stream_and_the_reply_is_what_was_shown(engine) -> None:
    completion, shown, logs = reply(engine, first_choice="required")
    assert logs and logs[-1][0]["tool"] == "slow/echo" and logs[-1][0]["status"] == "ran"
    assert completion.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert len(shown) > 1  # piece by piece, not the whole text at the end
    assert "".join(shown) == completion.text and completion.text.strip()
    assert completion.completion_tokens > 0 and completion.model_file


def test_stop_ends_a_tools_reply_as_cancelled(engine) -> None:
    stop = threading.Event()
    stop.set()
    completion, _, logs = reply(engine, first_choice="required", stop=stop)
    assert completion.finish_reason == FinishReason.CANCELLED
    assert all(entry["status"] != "ran" for log in logs for entry in log)
