"""The terminal face: ``assistant chat``, ``assistant chats``, ``assistant models ...``.

With no subcommand, ``assistant`` starts the desktop app. Expected failures print one line to
stderr and exit 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from assistant import __version__, library, paths
from assistant.errors import AssistantError
from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.engine import Completion, Engine, GenerationParams
    from assistant.storage import Store

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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
    parser.add_argument("--model", help="model for --self-test (default: the default model)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    chat = sub.add_parser("chat", help="send one message and stream the reply")
    chat.add_argument("prompt", nargs="+", help="the message ('-' reads it from stdin)")
    chat.add_argument("-m", "--model", help="model file name or path (default: the default model)")
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

    chats = sub.add_parser("chats", help="list conversations")
    chats.add_argument("--json", action="store_true")
    chats.set_defaults(handler=cmd_chats)

    search = sub.add_parser("search", help="full-text search across all conversations")
    search.add_argument("query")
    search.add_argument("--limit", type=int, default=20)
    search.set_defaults(handler=cmd_search)

    export = sub.add_parser("export", help="export a conversation as Markdown or JSON")
    export.add_argument("conversation", type=int)
    export.add_argument("--format", choices=("md", "json"), default="md")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    export.set_defaults(handler=cmd_export)

    try:
        from assistant.cli_models import add_models_commands
    except ImportError:  # the models commands are optional while they are being built
        pass
    else:
        add_models_commands(sub)
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        if args.self_test:
            return self_test(args.model)
        handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
        if handler is None:
            from assistant.ui.app import run

            return run([sys.argv[0], *argv])
        return handler(args)
    except AssistantError as exc:
        print(f"assistant: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("assistant: interrupted", file=sys.stderr)
        return 130


def _configure_logging(verbose: bool) -> None:
    handlers: list[logging.Handler] = []
    try:
        handlers.append(logging.FileHandler(paths.log_dir() / "cli.log", encoding="utf-8"))
    except OSError:
        pass
    if verbose:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers or [logging.NullHandler()],
        force=True,
    )


def _prompt_text(parts: list[str]) -> str:
    if parts == ["-"]:
        return sys.stdin.read()
    return " ".join(parts)


def cmd_chat(args: argparse.Namespace) -> int:
    from assistant.engine import Engine, GenerationParams
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
        model_path = library.resolve_model(
            args.model or (conversation.model if conversation else None), settings
        )
        engine = Engine()
        try:
            loaded = engine.load(
                model_path, n_ctx=args.ctx or settings.n_ctx, n_gpu_layers=settings.n_gpu_layers
            )
            if conversation is None:
                conversation = store.create_conversation(
                    _title_from(prompt), system_prompt=args.system
                )
            # Saved before generation starts, so a crash from here on keeps the question.
            store.add_message(conversation.id, "user", prompt)
            store.set_conversation_model(conversation.id, model_path.name)
            if loaded.template_note:
                print(f"note: {loaded.template_note}", file=sys.stderr)
            state = _state_path(conversation.id)
            engine.load_state(state)
            history = store.chat_history(conversation.id, settings.system_prompt)
            params = GenerationParams(
                max_tokens=args.max_tokens or settings.max_tokens,
                temperature=settings.temperature if args.temperature is None else args.temperature,
                top_p=settings.top_p,
                seed=args.seed,
            )
            completion = _stream_reply(
                store, engine, conversation.id, model_path.name, history, params
            )
            if completion.finish_reason != "error":
                engine.save_state(state)
            _prune_states(store)
        finally:
            engine.close()
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
            f"conversation {conversation.id}: {completion.completion_tokens} tokens, "
            f"{completion.tokens_per_s:.1f} tokens/s, time to first token "
            f"{completion.ttft_s * 1000:.0f} ms, prompt {completion.prompt_tokens} tokens "
            f"({completion.cached_tokens} reused), finish {completion.finish_reason}",
            file=sys.stderr,
        )
    if completion.finish_reason == "error":
        raise AssistantError(completion.error or "Generation failed.")
    return 130 if completion.finish_reason == "cancelled" else EXIT_OK


def _stream_reply(
    store: Store,
    engine: Engine,
    conversation_id: int,
    model_file: str,
    history: list[dict[str, str]],
    params: GenerationParams,
) -> Completion:
    """Generate one reply, printing it as it streams and checkpointing it twice a second.

    Whatever ends it (Ctrl+C, SIGTERM, a closed pipe, a failing database), the reply row is
    finished with the text received so far: it never stays "streaming" in the database.
    """
    stop = threading.Event()
    reply = store.start_reply(conversation_id, model_file)
    text: list[str] = []
    last_checkpoint = time.monotonic()

    def on_text(piece: str) -> None:
        nonlocal last_checkpoint
        text.append(piece)
        try:
            sys.stdout.write(piece)
            sys.stdout.flush()
        except OSError:  # the reader went away (`| head`): stop, keep what was made
            stop.set()
        now = time.monotonic()
        if now - last_checkpoint >= 0.5:
            store.checkpoint_reply(reply.id, "".join(text))
            last_checkpoint = now

    def on_signal(*_: object) -> None:
        stop.set()

    signals = [signal.SIGINT] + [
        getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
    ]
    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    completion: Completion | None = None
    try:
        completion = engine.generate(history, params, on_text=on_text, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        with contextlib.suppress(OSError):
            sys.stdout.write("\n")
            sys.stdout.flush()
        if completion is None:  # generate() itself raised: record what arrived, then re-raise
            with contextlib.suppress(AssistantError):
                store.finish_reply(reply.id, "".join(text), "error")
    store.finish_reply(
        reply.id,
        completion.text,
        completion.finish_reason,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        duration_ms=round(completion.duration_s * 1000),
        ttft_ms=round(completion.ttft_s * 1000),
    )
    return completion


def _state_path(conversation_id: int) -> Path:
    """Where the CLI keeps a conversation's KV cache between runs, so turn 2 reuses turn 1."""
    folder = paths.data_dir() / "kv-cache"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"conversation-{conversation_id}.state"


KEEP_STATES = 3


def _prune_states(store: Store) -> None:
    """Keep the saved KV caches of the few most recent conversations that still exist.

    A 7B model's cache is about 0.5 GB at 4k tokens, so they are a cache, not an archive.
    """
    alive = {c.id for c in store.conversations()}
    states = sorted(
        _state_path(0).parent.glob("conversation-*.state"),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    kept = 0
    for state in states:
        conversation_id = state.stem.removeprefix("conversation-")
        if kept < KEEP_STATES and conversation_id.isdigit() and int(conversation_id) in alive:
            kept += 1
            continue
        state.unlink(missing_ok=True)
        state.with_name(state.name + ".json").unlink(missing_ok=True)


def _title_from(prompt: str) -> str:
    line = prompt.strip().splitlines()[0] if prompt.strip() else "New chat"
    return line if len(line) <= 60 else line[:57].rstrip() + "..."


def cmd_chats(args: argparse.Namespace) -> int:
    from assistant.storage import Store

    store = Store(recover=False)
    try:
        conversations = store.conversations()
        if args.json:
            print(json.dumps([c.__dict__ for c in conversations], indent=2))
            return EXIT_OK
        for c in conversations:
            print(
                f"{c.id:>5}  {c.updated_at[:16].replace('T', ' ')}  {c.title}"
                + (f"  [{c.model}]" if c.model else "")
            )
    finally:
        store.close()
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    from assistant.storage import Store, format_snippet

    store = Store(recover=False)
    try:
        for hit in store.search(args.query, limit=args.limit):
            snippet = " ".join(format_snippet(hit.snippet, "[", "]").split())
            print(f"{hit.conversation_id:>5}  {hit.title}: [{hit.role}] {snippet}")
    finally:
        store.close()
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from assistant.storage import Store

    store = Store(recover=False)
    try:
        if args.format == "json":
            text = json.dumps(store.export_json(args.conversation), indent=2, ensure_ascii=False)
        else:
            text = store.export_markdown(args.conversation)
    finally:
        store.close()
    if args.output:
        try:
            args.output.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise AssistantError(f"Could not write {args.output}: {exc.strerror or exc}") from exc
    else:
        print(text)
    return EXIT_OK


def self_test(model: str | None) -> int:
    """Load a model, generate a few tokens, round-trip the database; one line, exit 0 or 1."""
    import tempfile

    from assistant.engine import Engine, GenerationParams
    from assistant.storage import Store

    started = time.monotonic()
    try:
        path = library.resolve_model(model)
        engine = Engine()
        try:
            engine.load(path, n_ctx=512)
            completion = engine.generate(
                [{"role": "user", "content": "Say hello."}],
                GenerationParams(max_tokens=8, temperature=0.0, seed=1),
            )
        finally:
            engine.close()
        if completion.finish_reason == "error" or completion.completion_tokens == 0:
            raise AssistantError(f"the model generated nothing ({completion.error or 'no tokens'})")
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "self-test.db")
            try:
                c = store.create_conversation("self-test")
                store.add_message(c.id, "user", "Say hello.")
                reply = store.start_reply(c.id, path.name)
                store.finish_reply(reply.id, completion.text, completion.finish_reason)
                ok = [m.content for m in store.messages(c.id)] == ["Say hello.", completion.text]
                ok = ok and store.integrity_check()
            finally:
                store.close()
        if not ok:
            raise AssistantError("the database round trip returned different messages")
        from assistant.ui.app import check_gui  # the GUI toolkit starts offscreen

        check_gui()
    except AssistantError as exc:
        print(f"self-test failed: {exc}")
        return EXIT_FAILED
    except Exception as exc:  # the self-test reports bugs too, in one line
        log.exception("self-test crashed")
        print(f"self-test failed: {type(exc).__name__}: {exc}")
        return EXIT_FAILED
    print(
        f"self-test passed: {path.name} generated {completion.completion_tokens} tokens at "
        f"{completion.tokens_per_s:.1f} tokens/s; database ok; {time.monotonic() - started:.1f} s"
    )
    return EXIT_OK
