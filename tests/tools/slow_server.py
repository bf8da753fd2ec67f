"""A small MCP server for the failure tests (with the mcp SDK): a tool that answers, one that
fails, and one that takes longer than any timeout; over stdio, or over HTTP with --http PORT."""

import time

from mcp.server.mcpserver import MCPServer

app = MCPServer("slow")


@app.tool()
def echo(text: str) -> str:
    """Say the text back."""
    return text


@app.tool()
def fail(text: str) -> str:
    """Always fails."""
    raise ValueError(f"cannot do {text}")


@app.tool()
def sleep(seconds: float) -> str:
    """Wait, then answer."""
    time.sleep(seconds)
    return "woke up"


if __name__ == "__main__":
    import sys

    if "--echo-only" in sys.argv:  # one tool: a small model's prompt stays as the tests know it
        app.remove_tool("fail")
        app.remove_tool("sleep")
    if "--http" in sys.argv:  # over streamable HTTP on loopback: --http PORT
        port = int(sys.argv[sys.argv.index("--http") + 1])
        app.run("streamable-http", host="127.0.0.1", port=port)
    else:
        app.run()
