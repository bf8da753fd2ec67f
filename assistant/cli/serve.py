"""``assistant serve``: the engine process on its own, an OpenAI-compatible API for other apps
on this machine (and, with ``--supervised``, the child the app's supervisor starts)."""

from __future__ import annotations

import argparse
from typing import Any

from assistant.models import library
from assistant.settings import Settings


def add_serve_command(sub: Any) -> None:
    """``assistant serve``."""
    serve = sub.add_parser(
        "serve", help="run the engine: an OpenAI-compatible API for other apps on this machine"
    )
    serve.add_argument("--model", help="model to load at start (file name or path)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: the Local API port, 8484)")
    serve.add_argument("--api-key", help="the key clients must send (default: from Settings)")
    serve.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    serve.add_argument("--ctx", type=int, help="context size of each request (each slot)")
    serve.add_argument(
        "--slots",
        type=int,
        help="requests served at once (default: as many as memory allows, up to 64)",
    )
    serve.add_argument(
        "--queue", type=int, help="requests waiting for a slot before 429 (default 256)"
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web origin allowed to call the API from a browser (CORS); repeatable",
    )
    serve.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument("--no-announce", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    from assistant import logs
    from assistant.engine import serve
    from assistant.records import API_KEY_ENV, KEY_ENV

    logs.configure("engine", args.verbose)
    settings = Settings.load()
    owner_key = ""
    if args.supervised:
        owner_key = os.environ.get(KEY_ENV, "")
        key = os.environ.get(API_KEY_ENV, "")
    else:
        key = args.api_key or settings.api_key or ""
        if not key:
            key = settings.ensure_api_key()
            settings.save()
            print(f"API key (saved in Settings): {key}")
    model = library.find_model(args.model) if args.model else None
    return serve.serve(
        host=args.host,
        port=args.port if args.port is not None else settings.api_port,
        api_key=key,
        owner_key=owner_key,
        model=model,
        n_ctx=args.ctx or settings.n_ctx,
        slots=args.slots if args.slots is not None else settings.slots,
        max_queue=args.queue or 0,
        n_gpu_layers=settings.n_gpu_layers,
        threads=args.threads if args.threads is not None else settings.threads,
        allowed_origins=frozenset(args.allow_origin),
        supervised=args.supervised,
        announce=not args.no_announce,
    )
