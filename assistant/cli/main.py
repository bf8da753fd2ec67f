"""The terminal face's root: the argument tree of every command, and running one.

``assistant.__main__`` starts the desktop app when no command is given, and this otherwise.
Each command group adds its own arguments (``chat``, ``conversations``, ``serve``, ``models``,
``engines``). Expected failures print one line to stderr and exit 1; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from assistant import __version__
from assistant.cli import EXIT_FAILED
from assistant.errors import AssistantError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistant",
        description="Private chat with local language models. With no command, opens the app.",
    )
    parser.add_argument("--version", action="version", version=f"assistant {__version__}")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="load a model, generate a few tokens offscreen, round-trip the database, and exit",
    )
    parser.add_argument(
        "--model", help="with --self-test: the model to test (default: the default model)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from assistant.cli.chat import add_chat_command
    from assistant.cli.conversations import add_chats_command, add_search_and_export_commands
    from assistant.cli.documents import add_documents_commands
    from assistant.cli.engines import add_engines_commands
    from assistant.cli.models import add_models_commands
    from assistant.cli.serve import add_serve_command
    from assistant.cli.tools import add_tools_commands

    add_chat_command(sub)  # in the order `assistant --help` has always listed them
    add_chats_command(sub)
    add_serve_command(sub)
    add_search_and_export_commands(sub)
    add_models_commands(sub)
    add_engines_commands(sub)
    add_documents_commands(sub)
    add_tools_commands(sub)
    return parser


def run(args: argparse.Namespace, check_gui: Callable[[], None] | None = None) -> int:
    """Run the parsed command: expected failures in one line, exit status 1. ``check_gui`` is
    the self-test's last step, handed in by ``__main__`` (the terminal face never imports Qt)."""
    configure_logging(args.verbose)
    try:
        if args.self_test:
            from assistant.cli.self_test import self_test

            return self_test(args.model, check_gui=check_gui or _no_gui_check)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except AssistantError as exc:
        print(f"assistant: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("assistant: interrupted", file=sys.stderr)
        return 130


def _no_gui_check() -> None:
    raise AssistantError("no GUI check was given")


def configure_logging(verbose: bool) -> None:
    from assistant import logs

    logs.configure("cli", verbose)
