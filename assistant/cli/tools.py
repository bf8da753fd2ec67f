"""``assistant tools ...`` and ``assistant chat --tools``: MCP servers whose tools a chat may
call, each call shown and approved on the terminal (once, or always for that tool).

``add NAME -- COMMAND [ARGS...]`` or ``add NAME --url URL`` adds a server, ``import FILE``
takes an existing ``mcpServers`` JSON (Claude Desktop's, LM Studio's, Jan's), ``list`` starts
them and lists their tools (and says which failed, and why), ``allow SERVER/TOOL`` and
``rm NAME``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.cli import EXIT_OK
from assistant.errors import AssistantError
from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.chat.turn import Reply
    from assistant.clients.engine_client import EngineClient
    from assistant.records import Completion, GenerationParams
    from assistant.tools.mcp_servers import McpTools

SHOWN_CHARS = 300


def add_tools_commands(subparsers: argparse._SubParsersAction) -> None:
    tools = subparsers.add_parser("tools", help="MCP servers whose tools chats may call")
    sub = tools.add_subparsers(dest="tools_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add a server: NAME -- COMMAND [ARGS...], or NAME --url URL")
    add.add_argument("name")
    add.add_argument("--url", help="an MCP server over HTTP")
    add.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command and its args")
    add.set_defaults(handler=cmd_add)
    imp = sub.add_parser("import", help='add the servers of an {"mcpServers": ...} JSON file')
    imp.add_argument("file", type=Path)
    imp.set_defaults(handler=cmd_import)
    ls = sub.add_parser("list", help="start the servers and list their tools")
    ls.set_defaults(handler=cmd_list)
    allow = sub.add_parser("allow", help="always allow SERVER/TOOL (no question)")
    allow.add_argument("tool")
    allow.set_defaults(handler=cmd_allow)
    rm = sub.add_parser("rm", help="remove a server")
    rm.add_argument("name")
    rm.set_defaults(handler=cmd_rm)


def _save_servers(settings: Settings, mapping: dict[str, Any]) -> list[str]:
    from assistant.tools.mcp_servers import ConfigError, parse_config

    try:
        parse_config({"mcpServers": mapping})
    except ConfigError as exc:
        raise AssistantError(str(exc)) from None
    settings.mcp_servers = {**settings.mcp_servers, **mapping}
    settings.save()
    return list(mapping)


def cmd_add(args: argparse.Namespace) -> int:
    command = [c for c in args.command if c != "--"] if args.command else []
    if bool(args.url) == bool(command):
        raise AssistantError("Give either a command (after --) or --url.")
    spec = {"url": args.url} if args.url else {"command": command[0], "args": command[1:]}
    _save_servers(Settings.load(), {args.name: spec})
    print(f"Added {args.name}. Its tools are offered with `assistant chat --tools`.")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AssistantError(f"Could not read {args.file}: {exc}") from None
    data = data.get("mcpServers", data) if isinstance(data, dict) else data
    if not isinstance(data, dict):
        raise AssistantError(f'{args.file} has no {{"mcpServers": ...}}.')
    names = _save_servers(Settings.load(), data)
    print(f"Added {', '.join(names)}.")
    return EXIT_OK


def cmd_list(_args: argparse.Namespace) -> int:
    settings = Settings.load()
    if not settings.mcp_servers:
        print("No MCP servers. Add one: `assistant tools add NAME -- COMMAND [ARGS]`.")
        return EXIT_OK
    mcp = start_servers(settings)
    try:
        for tool in mcp.tools:
            allowed = " (always allowed)" if tool.key in settings.allowed_tools else ""
            about = tool.description.splitlines()[0] if tool.description else ""
            print(f"{tool.key}{allowed}: {about}")
        for problem in mcp.problems:
            print(f"not available: {problem}")
    finally:
        mcp.close()
    return EXIT_OK


def cmd_allow(args: argparse.Namespace) -> int:
    settings = Settings.load()
    if args.tool not in settings.allowed_tools:
        settings.allowed_tools = [*settings.allowed_tools, args.tool]
        settings.save()
    print(f"{args.tool} runs without asking from now on.")
    return EXIT_OK


def cmd_rm(args: argparse.Namespace) -> int:
    settings = Settings.load()
    if args.name not in settings.mcp_servers:
        raise AssistantError(f"No MCP server named {args.name}.")
    settings.mcp_servers = {k: v for k, v in settings.mcp_servers.items() if k != args.name}
    settings.allowed_tools = [
        t for t in settings.allowed_tools if not t.startswith(f"{args.name}/")
    ]
    settings.save()
    print(f"Removed {args.name}.")
    return EXIT_OK


def start_servers(settings: Settings) -> McpTools:
    from assistant.tools.mcp_servers import ConfigError, McpTools, parse_config

    try:
        configs = parse_config({"mcpServers": settings.mcp_servers})
    except ConfigError as exc:
        raise AssistantError(f"The MCP servers in Settings: {exc}") from None
    return McpTools(configs, local_only=settings.local_only).start()


def reply_with_tools(
    client: EngineClient,
    reply: Reply,
    history: list[dict[str, Any]],
    params: GenerationParams,
    settings: Settings,
    model: str,
    first_choice: str = "auto",
    *,
    on_text: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> Completion:
    """A reply that may call the servers' tools, streamed to ``on_text``, each call asked
    about on the terminal, shown with its result, and kept with the reply as it happens (a
    crash loses none)."""
    from assistant.chat import tool_turn

    if not settings.mcp_servers:
        raise AssistantError(
            "No MCP servers: add one with `assistant tools add NAME -- COMMAND [ARGS]` or "
            "`assistant tools import FILE`."
        )
    mcp = start_servers(settings)
    try:
        for problem in mcp.problems:
            print(f"note: tool server {problem} The reply goes on without it.", file=sys.stderr)
        wanted: Any = first_choice
        if first_choice not in ("auto", "required", "none"):
            named = next((t for t in mcp.tools if t.key == first_choice), None)
            if named is None:
                known = ", ".join(t.key for t in mcp.tools) or "none"
                raise AssistantError(f"No tool {first_choice} (tools: {known}).")
            wanted = {"type": "function", "function": {"name": named.function_name}}
        allowed = set(settings.allowed_tools)

        def on_calls(log: list[dict[str, Any]]) -> None:
            entry = log[-1]
            shown = " ".join(str(entry["result"]).split())
            mark = {"failed": " (error)", "denied": " (declined)"}.get(entry["status"], "")
            print(f"← {entry['tool']}{mark}: {shown[:SHOWN_CHARS]}"
                  f"{'...' if len(shown) > SHOWN_CHARS else ''}", file=sys.stderr)  # fmt: skip
            reply.store.set_tool_calls(reply.message_id, log)

        def approve(tool: Any, arguments: str) -> str:
            # Ctrl+C while asked: no to this call, and the reply stops (the reply's own
            # handler only sets ``stop``, which a waiting readline never sees).
            previous = signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                return _approve(tool, arguments)
            except KeyboardInterrupt:
                print(file=sys.stderr)
                if stop is not None:
                    stop.set()
                return tool_turn.DENY
            finally:
                signal.signal(signal.SIGINT, previous)

        completion = tool_turn.reply(
            client, mcp, history, params, model, approve=approve, allowed=allowed,
            on_calls=on_calls, first_choice=wanted, on_text=on_text, stop=stop,
        )  # fmt: skip
        if allowed - set(settings.allowed_tools):
            settings.allowed_tools = sorted(allowed)
            settings.save()
    finally:
        mcp.close()
    return completion


def _approve(tool: Any, arguments: str) -> str:
    from assistant.chat import tool_turn

    print(f"→ {tool.key} {arguments}", file=sys.stderr)
    print(f"  Run it? [y]es, [n]o, [a]lways for {tool.key}: ", end="", file=sys.stderr,
          flush=True)  # fmt: skip
    answer = sys.stdin.readline().strip().lower()[:1]  # nothing (end of input): no
    return {"y": tool_turn.ONCE, "a": tool_turn.ALWAYS}.get(answer, tool_turn.DENY)
