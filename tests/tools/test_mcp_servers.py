"""MCP servers as the chat uses them: configuration as other apps write it, real servers
(the reference memory server from npm, and a Python one made with the SDK), and each way one
can fail: not starting, hanging, erring, a call that takes too long."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.tools.mcp_servers import ConfigError, McpTools, parse_config

SLOW = str(Path(__file__).with_name("slow_server.py"))
ROOT = Path(__file__).resolve().parents[2]


def memory_server() -> str:
    """The reference memory server (@modelcontextprotocol/server-memory), as .ci/run installs
    it with npm into build/mcp-servers."""
    found = ROOT / "build" / "mcp-servers" / "node_modules" / ".bin" / "mcp-server-memory"
    if not found.exists() or shutil.which("node") is None:
        pytest.skip("npm's @modelcontextprotocol/server-memory is not installed (.ci/run does)")
    return str(found)


def test_claude_desktop_configuration_is_read() -> None:
    servers = parse_config('{"mcpServers": {"files": {"command": "npx", "args": ["-y", '
                           '"@modelcontextprotocol/server-filesystem", "/tmp"], "env": '
                           '{"A": "1"}}, "web": {"url": "https://example.com/mcp"}}}')  # fmt: skip
    assert [(s.name, s.command, s.args, s.url) for s in servers] == [
        ("files", "npx", ("-y", "@modelcontextprotocol/server-filesystem", "/tmp"), None),
        ("web", None, (), "https://example.com/mcp"),
    ]
    assert servers[1].leaves_machine and not servers[0].leaves_machine
    for bad, says in [("{", "not JSON"), ('{"mcpServers": {"x": {}}}', "needs a 'command'"),
                      ('{"mcpServers": {"x": {"url": "ftp://h"}}}', "http"),
                      ('{"mcpServers": {"a b": {"command": "c"}}}', "a name of")]:  # fmt: skip
        with pytest.raises(ConfigError, match=says):
            parse_config(bad)


def test_the_reference_memory_server_runs_a_call(tmp_path: Path) -> None:
    store = tmp_path / "memory.json"
    config = {"memory": {"command": memory_server(), "env": {"MEMORY_FILE_PATH": str(store)}}}
    mcp = McpTools(parse_config(config)).start()
    try:
        assert mcp.problems == []
        names = {t.key for t in mcp.tools}
        assert {"memory/create_entities", "memory/read_graph"} <= names
        create = next(t for t in mcp.tools if t.key == "memory/create_entities")
        assert create.openai()["function"]["name"] == "memory__create_entities"
        result = mcp.call(create, {"entities": [{"name": "Ada", "entityType": "person",
                                                 "observations": ["wrote programs"]}]})  # fmt: skip
        assert not result.is_error and "Ada" in result.text
        assert "Ada" in store.read_text()
    finally:
        mcp.close()


def test_each_failure_is_one_line_and_the_rest_work(tmp_path: Path) -> None:
    config = {
        "slow": {"command": sys.executable, "args": [SLOW]},
        "missing": {"command": str(tmp_path / "no-such-program")},
        "hangs": {"command": "sleep", "args": ["600"]},
        "crashes": {"command": sys.executable, "args": ["-c", "import sys; sys.exit(3)"]},
        "far": {"url": "https://tools.example.com/mcp"},
    }
    started = time.monotonic()
    mcp = McpTools(parse_config(config), local_only=True).start(timeout=5)
    try:
        assert time.monotonic() - started < 20
        problems = "\n".join(mcp.problems)
        assert "missing: could not start" in problems
        assert "hangs: did not answer within 5 s" in problems
        assert "crashes: could not start" in problems
        assert "far: not started, “Local only” is on" in problems
        assert len(mcp.problems) == 4
        tools = {t.name: t for t in mcp.tools}
        assert mcp.call(tools["echo"], {"text": "hi"}).text == "hi"
        failed = mcp.call(tools["fail"], {"text": "x"})
        assert failed.is_error and "Error executing tool fail" in failed.text
        slow = mcp.call(tools["sleep"], {"seconds": 30}, timeout=1)
        assert slow.is_error and "did not answer within 1 s" in slow.text
        # The server still answers after a call that timed out.
        assert mcp.call(tools["echo"], {"text": "still here"}).text == "still here"
    finally:
        mcp.close()


def test_a_server_over_http_lists_and_runs_its_tools(tmp_path: Path) -> None:
    # A real streamable-HTTP MCP server (the mcp SDK's) on loopback, which "Local only" allows.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, SLOW, "--http", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s, contextlib.suppress(OSError):
                s.connect(("127.0.0.1", port))
                break
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/mcp"
        config = {"web": {"url": url, "headers": {"Authorization": "Bearer not-checked"}}}
        mcp = McpTools(parse_config(config), local_only=True).start(timeout=20)
        try:
            assert mcp.problems == []
            tools = {t.key: t for t in mcp.tools}
            assert {"web/echo", "web/fail", "web/sleep"} <= set(tools)
            assert mcp.call(tools["web/echo"], {"text": "over http"}).text == "over http"
            failed = mcp.call(tools["web/fail"], {"text": "x"})
            assert failed.is_error and "Error executing tool fail" in failed.text
            server.kill()  # the server goes away: a call is an error, not a crash
            server.wait()
            gone = mcp.call(tools["web/echo"], {"text": "anyone?"}, timeout=10)
            assert gone.is_error and gone.text
        finally:
            mcp.close()
    finally:
        server.kill()
        server.wait()
