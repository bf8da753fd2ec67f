"""``assistant chats`` (list, ``rm``), ``assistant search`` and ``assistant export``: the
conversations in the database, from the terminal."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from assistant import endpoints
from assistant.cli import EXIT_OK
from assistant.errors import AssistantError


def add_chats_command(sub: Any) -> None:
    """``assistant chats`` and ``chats rm``."""
    chats = sub.add_parser("chats", help="list conversations (or `chats rm ID` to delete)")
    chats.add_argument("--json", action="store_true")
    chats.set_defaults(handler=cmd_chats)
    chats_sub = chats.add_subparsers(dest="chats_command", metavar="ACTION")
    rm = chats_sub.add_parser("rm", help="delete conversations and their saved KV caches")
    rm.add_argument("ids", type=int, nargs="*", metavar="ID")
    rm.add_argument("--all", action="store_true", help="delete every conversation (and VACUUM)")
    rm.set_defaults(handler=cmd_chats_rm)


def add_search_and_export_commands(sub: Any) -> None:
    """``assistant search`` and ``assistant export``."""
    search = sub.add_parser("search", help="full-text search across all conversations")
    search.add_argument("query")
    search.add_argument("--limit", type=int, default=20)
    search.set_defaults(handler=cmd_search)

    export = sub.add_parser("export", help="export a conversation as Markdown or JSON")
    export.add_argument("conversation", type=int)
    export.add_argument("--format", choices=("md", "json"), default="md")  # ExportFormat
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    export.set_defaults(handler=cmd_export)


def cmd_chats(args: argparse.Namespace) -> int:
    from assistant.conversations.storage import Store

    store = Store(recover=False)
    try:
        conversations = store.conversations()
        if args.json:
            print(json.dumps([c.__dict__ for c in conversations], indent=2))
            return EXIT_OK
        for c in conversations:
            writer = endpoints.writer_label(c.engine, c.model)
            print(
                f"{c.id:>5}  {c.updated_at[:16].replace('T', ' ')}  {c.title}"
                + (f"  [{writer}]" if writer else "")
            )
    finally:
        store.close()
    return EXIT_OK


def cmd_chats_rm(args: argparse.Namespace) -> int:
    from assistant.chat import turn
    from assistant.conversations.storage import Store

    if bool(args.ids) == args.all:
        raise AssistantError("Name the conversations to delete, or --all for every one.")
    store = Store(recover=False)
    try:
        if args.all:
            count = turn.delete_all_conversations(store)
            print(f"deleted all {count} conversations")
            return EXIT_OK
        for conversation_id in args.ids:
            store.conversation(conversation_id)  # ConversationNotFound: one clear line
            turn.delete_conversation(store, conversation_id)
            print(f"deleted conversation {conversation_id}")
    finally:
        store.close()
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    from assistant.conversations.search import format_snippet
    from assistant.conversations.storage import Store

    store = Store(recover=False)
    try:
        for hit in store.search(args.query, limit=args.limit):
            snippet = " ".join(format_snippet(hit.snippet, "[", "]").split())
            print(f"{hit.conversation_id:>5}  {hit.title}: [{hit.role}] {snippet}")
    finally:
        store.close()
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from assistant.conversations.export import ExportFormat, conversation_text
    from assistant.conversations.storage import Store

    store = Store(recover=False)
    try:
        text = conversation_text(store, args.conversation, ExportFormat(args.format))
    finally:
        store.close()
    if args.output:
        try:
            from assistant import files

            files.write_private_text(args.output, text + "\n")
        except OSError as exc:
            raise AssistantError(f"Could not write {args.output}: {exc.strerror or exc}") from exc
    else:
        print(text)
    return EXIT_OK
