"""The terminal face: ``assistant chat``, ``assistant chats``, ``assistant models ...``.

``assistant.__main__`` starts the desktop app when no command is given, and this otherwise.
Expected failures print one line to stderr and exit 1; anything else is a bug and keeps its
traceback.

Over 400 lines: the argument tree of every command and the chat, chats and export commands;
models and engines have modules of their own (cli_models.py, cli_engines.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from assistant import __version__, library, paths, remote
from assistant.engine.records import FinishReason
from assistant.errors import AssistantError, EngineUnavailable
from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.chat import Reply
    from assistant.client import EngineClient
    from assistant.engine.records import Completion, GenerationParams
    from assistant.engine.supervisor import Supervisor
    from assistant.storage import Conversation, Store

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED = 0, 1


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

    chat = sub.add_parser("chat", help="send one message and stream the reply")
    chat.add_argument("prompt", nargs="+", help="the message ('-' reads it from stdin)")
    chat.add_argument(
        "-m",
        "--model",
        help="model file name or path, or a remote engine's model id (default: the default model)",
    )
    chat.add_argument(
        "-e",
        "--engine",
        help="a remote engine from `assistant engines list` ('local': this machine; default: "
        "the conversation's engine)",
    )
    chat.add_argument("-c", "--conversation", type=int, help="continue this conversation id")
    chat.add_argument(
        "--continue",
        dest="continue_last",
        action="store_true",
        help="continue the most recent conversation",
    )
    chat.add_argument("-n", "--max-tokens", type=int, help="longest reply, in tokens")
    chat.add_argument("-s", "--system", help="system prompt for a new conversation")
    chat.add_argument("--ctx", type=int, help="context window in tokens (default from settings)")
    chat.add_argument("--seed", type=int, help="sampling seed, for repeatable replies")
    chat.add_argument("--temperature", type=float)
    chat.add_argument(
        "--stats",
        action="store_true",
        help="print tokens/s, time to first token and reused tokens to stderr",
    )
    chat.set_defaults(handler=cmd_chat)

    chats = sub.add_parser("chats", help="list conversations (or `chats rm ID` to delete)")
    chats.add_argument("--json", action="store_true")
    chats.set_defaults(handler=cmd_chats)
    chats_sub = chats.add_subparsers(dest="chats_command", metavar="ACTION")
    rm = chats_sub.add_parser("rm", help="delete conversations and their saved KV caches")
    rm.add_argument("ids", type=int, nargs="*", metavar="ID")
    rm.add_argument("--all", action="store_true", help="delete every conversation (and VACUUM)")
    rm.set_defaults(handler=cmd_chats_rm)

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

    search = sub.add_parser("search", help="full-text search across all conversations")
    search.add_argument("query")
    search.add_argument("--limit", type=int, default=20)
    search.set_defaults(handler=cmd_search)

    export = sub.add_parser("export", help="export a conversation as Markdown or JSON")
    export.add_argument("conversation", type=int)
    export.add_argument("--format", choices=("md", "json"), default="md")  # ExportFormat
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    export.set_defaults(handler=cmd_export)

    from assistant.cli_engines import add_engines_commands
    from assistant.cli_models import add_models_commands

    add_models_commands(sub)
    add_engines_commands(sub)
    return parser


def main(argv: list[str]) -> int:
    """Run one command (``argv`` without the program name); the desktop app is started by
    ``assistant.__main__`` when no command is given."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Run the parsed command: expected failures in one line, exit status 1."""
    _configure_logging(args.verbose)
    try:
        if args.self_test:
            from assistant.self_test import self_test

            return self_test(args.model)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except AssistantError as exc:
        print(f"assistant: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("assistant: interrupted", file=sys.stderr)
        return 130


def _configure_logging(verbose: bool) -> None:
    from assistant import logs

    logs.configure("cli", verbose)


def _prompt_text(parts: list[str]) -> str:
    if parts == ["-"]:
        return sys.stdin.read()
    return " ".join(parts)


def cmd_chat(args: argparse.Namespace) -> int:
    from assistant.storage import Store

    settings = Settings.load()
    prompt = _prompt_text(args.prompt).strip()
    if not prompt:
        raise AssistantError("The message is empty.")
    store = Store(recover=False)
    try:
        conversation = None
        if args.conversation is not None:
            conversation = store.conversation(args.conversation)
        elif args.continue_last and store.conversations():
            conversation = store.conversations()[0]
        engine_name = args.engine or (conversation.engine if conversation else None)
        if engine_name and engine_name.lower() != remote.LOCAL_ENGINE:
            completion, conversation_id = _chat_remote(
                args, settings, store, conversation, engine_name, prompt
            )
        else:
            completion, conversation_id = _chat_local(args, settings, store, conversation, prompt)
    finally:
        store.close()

    if completion.trimmed_messages:
        print(
            f"note: the oldest {completion.trimmed_messages} messages did not fit in the "
            "context window and were left out",
            file=sys.stderr,
        )
    if args.stats:
        print(
            f"conversation {conversation_id}: {completion.completion_tokens} tokens, "
            f"{completion.tokens_per_s:.1f} tokens/s, time to first token "
            f"{completion.ttft_s * 1000:.0f} ms, prompt {completion.prompt_tokens} tokens "
            f"({completion.cached_tokens} reused), finish {completion.finish_reason}",
            file=sys.stderr,
        )
    if completion.finish_reason == FinishReason.ERROR:
        raise AssistantError(completion.error or "Generation failed.")
    return 130 if completion.finish_reason == FinishReason.CANCELLED else EXIT_OK


def _params(args: argparse.Namespace, settings: Settings) -> GenerationParams:
    from assistant.engine.records import GenerationParams

    return GenerationParams(
        max_tokens=args.max_tokens or settings.max_tokens,
        temperature=settings.temperature if args.temperature is None else args.temperature,
        top_p=settings.top_p,
        seed=args.seed,
    )


def _chat_local(
    args: argparse.Namespace,
    settings: Settings,
    store: Store,
    conversation: Conversation | None,
    prompt: str,
) -> tuple[Completion, int]:
    """One turn on this machine's engine (the app's if it runs, else one of our own)."""
    from assistant import chat

    local_conversation = conversation is not None and not conversation.engine
    wanted = args.model or (conversation.model if conversation and local_conversation else None)
    with _engine(settings) as (client, supervisor):
        if wanted is None and supervisor is None:
            # Someone else's engine (the app's, a `serve`): use what it has loaded.
            loaded_now = client.status().get("loaded")
            if loaded_now:
                wanted = loaded_now["path"]
        # Absolute: the engine runs elsewhere, and takes only exact names or full paths.
        model_path = library.resolve_model(wanted, settings).resolve()
        loaded = client.load(
            model_path, n_ctx=args.ctx or settings.n_ctx, n_gpu_layers=settings.n_gpu_layers
        )
        conversation, _ = chat.begin_turn(
            store,
            conversation.id if conversation else None,
            prompt,
            model=model_path,
            system_prompt=args.system,
        )
        if loaded.template_note:
            print(f"note: {loaded.template_note}", file=sys.stderr)
        if loaded.safe_mode_note:
            print(f"note: {loaded.safe_mode_note}", file=sys.stderr)
        history = store.chat_history(conversation.id, settings.system_prompt)
        reply = chat.Reply(store, conversation.id, model_path)
        # An engine of our own ends with this command: keep the conversation's KV cache
        # on disk so that the next turn starts where this one ended.
        kv_state = f"conversation-{conversation.id}" if supervisor is not None else None
        params = _params(args, settings)

        def send(on_text: Callable[[str], None], stop: threading.Event) -> Completion:
            return client.chat(
                history,
                params,
                model=reply.choice.model,
                on_text=on_text,
                stop=stop,
                kv_state=kv_state,
                save_state=kv_state is not None,
            )

        def unavailable(exc: EngineUnavailable) -> str:
            crash = supervisor.wait_exit(3.0) if supervisor is not None else None
            return crash.sentence() if crash is not None else str(exc)

        completion = _stream_reply(reply, send, unavailable)
    _prune_states(store)
    return completion, conversation.id


def _chat_remote(
    args: argparse.Namespace,
    settings: Settings,
    store: Store,
    conversation: Conversation | None,
    engine_name: str,
    prompt: str,
) -> tuple[Completion, int]:
    """One turn on a remote engine: the message is stored first, then sent with the history."""
    from assistant import chat
    from assistant.cli_engines import remote_model
    from assistant.openai_client import OpenAIClient, in_use

    try:
        engine = remote.find_engine(settings, engine_name)
    except AssistantError as exc:
        if args.engine:
            raise
        raise AssistantError(
            f"This conversation uses {engine_name}: {exc} Go on with it on this machine with "
            "--engine local."
        ) from None
    same_engine = conversation is not None and conversation.engine == engine.name
    model = remote_model(
        settings,
        engine,
        args.model or (conversation.model if same_engine and conversation else None),
    )
    choice = chat.ModelChoice(model, engine=engine.name)
    conversation, _ = chat.begin_turn(
        store,
        conversation.id if conversation else None,
        prompt,
        model=choice,
        system_prompt=args.system,
    )
    history = store.chat_history(conversation.id, settings.system_prompt)
    params = _params(args, settings)
    # The client first: a CA bundle that cannot be read fails here, before a reply row exists.
    with OpenAIClient.for_engine(engine) as client, in_use(engine):
        reply = chat.Reply(store, conversation.id, choice)

        def send(on_text: Callable[[str], None], stop: threading.Event) -> Completion:
            return client.chat(
                history,
                params,
                model=model,
                on_text=on_text,
                stop=stop,
                on_retry=lambda sentence: print(f"note: {sentence}", file=sys.stderr),
            )

        completion = _stream_reply(reply, send, str)
    return completion, conversation.id


@contextlib.contextmanager
def _engine(settings: Settings) -> Iterator[tuple[EngineClient, Supervisor | None]]:
    """A running engine of this data directory, else one started for this command."""
    from assistant.engine.supervisor import Supervisor, find_running

    running = find_running()
    if running is not None:
        try:
            yield running, None
        finally:
            running.close()
        return
    supervisor = Supervisor(threads=settings.threads, n_ctx=settings.n_ctx, announce=False)
    try:
        client = supervisor.start()
        yield client, supervisor
    finally:
        supervisor.stop()


def _stream_reply(
    reply: Reply,
    send: Callable[[Callable[[str], None], threading.Event], Completion],
    unavailable: Callable[[EngineUnavailable], str],
) -> Completion:
    """Generate one reply through ``send``, printing it as it streams and checkpointing it.

    Whatever ends it (Ctrl+C, SIGTERM, a closed pipe, a failing database, the engine dying or
    refusing), the reply row is finished with the text received so far: it never stays
    "streaming". ``unavailable`` says why an engine that went away did.
    """
    from assistant.engine.records import Completion

    stop = threading.Event()

    def on_text(piece: str) -> None:
        reply.append(piece)
        try:
            sys.stdout.write(piece)
            sys.stdout.flush()
        except OSError:  # the reader went away (`| head`): stop, keep what was made
            stop.set()

    def on_signal(*_: object) -> None:
        stop.set()

    signals = [signal.SIGINT] + [
        getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
    ]
    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    completion: Completion | None = None
    try:
        completion = send(on_text, stop)
    except EngineUnavailable as exc:
        completion = Completion.failed(
            unavailable(exc), exc.partial_text or reply.text, reply.choice.model_file
        )
    except AssistantError as exc:  # refused (a key, a model, too busy): nothing was made
        completion = Completion.failed(str(exc), reply.text, reply.choice.model_file)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        with contextlib.suppress(OSError):
            sys.stdout.write("\n")
            sys.stdout.flush()
        if completion is None:  # send() itself raised: record what arrived, then re-raise
            reply.finish(None, FinishReason.ERROR)
    reply.finish(completion)
    return completion


KEEP_STATES = 3


def _prune_states(store: Store) -> None:
    """Keep the saved KV caches of the few most recent conversations that still exist.

    A 7B model's cache is about 0.5 GB at 4k tokens, so they are a cache, not an archive.
    """
    from assistant import chat

    alive = {c.id for c in store.conversations()}
    states = sorted(
        paths.kv_cache_dir().glob("conversation-*.state"),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    kept = 0
    for state in states:
        conversation_id = state.stem.removeprefix("conversation-")
        if kept < KEEP_STATES and conversation_id.isdigit() and int(conversation_id) in alive:
            kept += 1
            continue
        chat.forget_kv_state(state)


def cmd_chats(args: argparse.Namespace) -> int:
    from assistant.storage import Store

    store = Store(recover=False)
    try:
        conversations = store.conversations()
        if args.json:
            print(json.dumps([c.__dict__ for c in conversations], indent=2))
            return EXIT_OK
        for c in conversations:
            writer = remote.writer_label(c.engine, c.model)
            print(
                f"{c.id:>5}  {c.updated_at[:16].replace('T', ' ')}  {c.title}"
                + (f"  [{writer}]" if writer else "")
            )
    finally:
        store.close()
    return EXIT_OK


def cmd_chats_rm(args: argparse.Namespace) -> int:
    from assistant import chat
    from assistant.storage import Store

    if bool(args.ids) == args.all:
        raise AssistantError("Name the conversations to delete, or --all for every one.")
    store = Store(recover=False)
    try:
        if args.all:
            count = chat.delete_all_conversations(store)
            print(f"deleted all {count} conversations")
            return EXIT_OK
        for conversation_id in args.ids:
            store.conversation(conversation_id)  # ConversationNotFound: one clear line
            chat.delete_conversation(store, conversation_id)
            print(f"deleted conversation {conversation_id}")
    finally:
        store.close()
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    from assistant import logs
    from assistant.engine import serve

    logs.configure("engine", args.verbose)
    settings = Settings.load()
    owner_key = ""
    if args.supervised:
        owner_key = os.environ.get(serve.KEY_ENV, "")
        key = os.environ.get(serve.API_KEY_ENV, "")
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


def cmd_search(args: argparse.Namespace) -> int:
    from assistant.search import format_snippet
    from assistant.storage import Store

    store = Store(recover=False)
    try:
        for hit in store.search(args.query, limit=args.limit):
            snippet = " ".join(format_snippet(hit.snippet, "[", "]").split())
            print(f"{hit.conversation_id:>5}  {hit.title}: [{hit.role}] {snippet}")
    finally:
        store.close()
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from assistant.export import ExportFormat, conversation_text
    from assistant.storage import Store

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
