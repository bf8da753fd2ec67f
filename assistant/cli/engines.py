"""``assistant engines add | list | rm``: the remote engines, from the terminal.

They are kept in Settings (owner-only, like the Hugging Face token); the key is never printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from assistant import endpoints
from assistant.clients import remote
from assistant.clients.remote import EngineStatus
from assistant.errors import AssistantError
from assistant.settings import Settings


def add_engines_commands(sub: Any) -> None:
    engines = sub.add_parser(
        "engines", help="remote engines: OpenAI-compatible servers on other machines"
    )
    engines.set_defaults(handler=cmd_engines_list, json=False, models=False)
    actions = engines.add_subparsers(dest="engines_command", metavar="ACTION")

    add = actions.add_parser("add", help="add a remote engine by name and URL")
    add.add_argument("name", help="what to call it, e.g. gpu-box")
    add.add_argument("url", help="its API's base URL, e.g. http://gpu-box:8080/v1")
    add.add_argument(
        "--api-key",
        help="the key it asks for, if any (stored owner-only; '-' reads it from stdin, out of "
        "the shell's history)",
    )
    add.add_argument("--ca-bundle", help="a PEM file of certificate authorities to trust for it")
    add.set_defaults(handler=cmd_engines_add)

    listing = actions.add_parser("list", help="the engines, whether they answer, their models")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--models", action="store_true", help="list each engine's models too")
    listing.set_defaults(handler=cmd_engines_list)

    rm = actions.add_parser("rm", help="forget a remote engine (its chats stay)")
    rm.add_argument("name")
    rm.set_defaults(handler=cmd_engines_rm)


def cmd_engines_add(args: argparse.Namespace) -> int:
    from assistant.clients.openai_client import probe

    settings = Settings.load()
    key = _read_key() if args.api_key == "-" else args.api_key
    engine = remote.add_engine(settings, args.name, args.url, key, args.ca_bundle)
    status = probe(engine)
    assert status is not None  # nothing else talks to it from this process
    if status.reachable and status.engine.kind:
        remote.with_kind(settings, engine.name, status.engine.kind)
    settings.save()
    if status.reachable:
        print(f"added {engine.name}: {_describe(status)} at {engine.url}")
    else:
        print(f"added {engine.name} ({engine.url}); it does not answer now: {status.problem}")
    if engine.api_key and engine.url.startswith("http://") and not engine.is_loopback:
        print("note: over http:// its key and your messages travel unencrypted; use https://")
    if settings.local_only:
        print("note: “Local only” is on in Settings, so it is not used until you turn that off")
    return 0


def _read_key() -> str:
    """The key from stdin: asked for without echo on a terminal, else its first line."""
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("API key: ").strip()
    return sys.stdin.readline().strip()


def _describe(status: EngineStatus) -> str:
    """ "llama-server, 3 models" """
    label = status.engine.kind.label if status.engine.kind else "server"
    count = len(status.models)
    return f"{label}, {count} model{'s' if count != 1 else ''}"


def _status_of(statuses: list[EngineStatus | None], name: str) -> EngineStatus | None:
    return next((s for s in statuses if s is not None and s.name == name), None)


def cmd_engines_rm(args: argparse.Namespace) -> int:
    settings = Settings.load()
    engine = remote.remove_engine(settings, args.name)
    settings.save()
    print(f"removed {engine.name}; conversations it wrote keep their history")
    return 0


def cmd_engines_list(args: argparse.Namespace) -> int:
    from assistant.clients.openai_client import probe_all

    settings = Settings.load()
    engines = settings.engines
    statuses = probe_all(remote.visible_engines(settings))
    if args.json:
        rows: list[dict[str, Any]] = [{"name": endpoints.LOCAL_ENGINE, "url": None, "local": True}]
        for engine in engines:
            row: dict[str, Any] = {"name": engine.name, "url": engine.url, "local": False}
            found = _status_of(statuses, engine.name)
            if found is not None:
                row |= {
                    "reachable": found.reachable,
                    "problem": found.problem,
                    "kind": str(found.engine.kind) if found.engine.kind else None,
                    "models": list(found.models),
                }
            rows.append(row)
        print(json.dumps({"local_only": settings.local_only, "engines": rows}, indent=2))
        return 0
    print(f"{endpoints.LOCAL_ENGINE:<16}  this machine")
    for engine in engines:
        found = _status_of(statuses, engine.name)
        if found is None:
            state = "hidden: “Local only” is on"
        elif found.reachable:
            state = _describe(found)
        else:
            state = f"unavailable: {found.problem}"
        print(f"{engine.name:<16}  {engine.url}  {state}")
        if args.models and found is not None:
            for model in found.models:
                print(f"{'':<18}{engine.name} / {model}")
    return 0


def remote_model(settings: Settings, engine: endpoints.RemoteEngine, wanted: str | None) -> str:
    """The model to use on a remote engine: the one asked for, else its only one."""
    if wanted:
        return wanted
    from assistant.clients.openai_client import probe

    status = probe(engine)
    if status is None or not status.reachable:
        raise AssistantError(
            (status.problem if status else None) or f"{engine.name} does not answer."
        )
    if len(status.models) == 1:
        return status.models[0]
    listed = ", ".join(status.models) or "none"
    raise AssistantError(f"Name one of {engine.name}'s models with --model ({listed}).")
