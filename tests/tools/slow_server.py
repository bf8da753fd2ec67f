"""A small MCP server for the failure tests (with the mcp SDK): a tool that answers, one that
fails, and one that takes longer than any timeout."""

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
    app.run()
