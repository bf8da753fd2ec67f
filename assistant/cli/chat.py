"""``assistant chat``: one message, its reply streamed to the terminal and stored, on this
machine's engine (the app's if it runs, else one of our own) or on a remote engine."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from assistant import endpoints, paths
from assistant.cli import EXIT_OK
from assistant.clients import remote
from assistant.errors import AssistantError, EngineUnavailable
from assistant.models import library
from assistant.records import FinishReason
from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.chat.turn import Reply
    from assistant.clients.engine_client import EngineClient
    from assistant.clients.supervisor import Supervisor
    from assistant.conversations.storage import Conversation, Store
    from assistant.records import Completion, GenerationParams


def add_chat_command(sub: Any) -> None:
    """``assistant chat``."""
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
        "--docs",
        action="append",
        metavar="NAME",
        help="answer from this collection of your documents (`assistant docs`); repeatable",
    )
    chat.add_argument(
        "--tools",
        action="store_true",
        help="offer the tools of your MCP servers (`assistant tools`), each call approved here",
    )
    chat.add_argument(
        "--tool-choice",
        default="auto",
        metavar="auto|required|SERVER/TOOL",
        help="with --tools: whether the first step must call a tool, or this one",
    )
    chat.add_argument(
        "--stats",
        action="store_true",
        help="print tokens/s, time to first token and reused tokens to stderr",
    )
    chat.set_defaults(handler=cmd_chat)


def _prompt_text(parts: list[str]) -> str:
    if parts == ["-"]:
        return sys.stdin.read()
    return " ".join(parts)


def cmd_chat(args: argparse.Namespace) -> int:
    from assistant.conversations.storage import Store

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
        remote_engine = bool(engine_name and engine_name.lower() != endpoints.LOCAL_ENGINE)
        if remote_engine and (args.docs or args.tools):
            raise AssistantError(
                "--docs and --tools work with this machine's engine; add --engine local."
            )
        if remote_engine and engine_name:
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
    if completion.is_empty:
        print(
            f"note: {completion.empty_note} (conversation {conversation_id}); ask again, or try "
            "another model",
            file=sys.stderr,
        )
    return 130 if completion.finish_reason == FinishReason.CANCELLED else EXIT_OK


def _params(args: argparse.Namespace, settings: Settings) -> GenerationParams:
    from assistant.records import GenerationParams

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
    from assistant.chat import turn

    local_conversation = conversation is not None and not conversation.engine
    wanted = args.model or (conversation.model if conversation and local_conversation else None)
    with local_engine(settings) as (client, supervisor):
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
        conversation, _ = turn.begin_turn(
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
        hits = []
        if args.docs:
            from assistant.chat import sources

            hits = sources.find_passages(
                lambda texts, m: client.embed(texts, m, interactive=True),
                args.docs,
                prompt,
                n_ctx=loaded.n_ctx,
            )
            history = sources.with_passages(history, hits)
            if not hits:
                print("note: nothing in your documents matched; answering without them",
                      file=sys.stderr)  # fmt: skip
        reply = turn.Reply(store, conversation.id, model_path)
        if hits:
            store.set_sources(reply.message_id, sources.records(hits))
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

        if args.tools:
            from assistant.cli.tools import reply_with_tools

            def send_with_tools(on_text: Callable[[str], None], stop: threading.Event):
                return reply_with_tools(
                    client, reply, history, params, settings, str(reply.choice.model),
                    args.tool_choice, on_text=on_text, stop=stop,
                )  # fmt: skip

            completion = _stream_reply(reply, send_with_tools, unavailable)
        else:
            completion = _stream_reply(reply, send, unavailable)
    if hits:
        print("\nSources:")
        for number, hit in enumerate(hits, 1):
            where = f", {hit.passage.where}" if hit.passage.where else ""
            print(f"[{number}] {hit.passage.path}{where}")
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
    from assistant.chat import turn
    from assistant.cli.engines import remote_model
    from assistant.clients.openai_client import OpenAIClient, in_use

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
    choice = turn.ModelChoice(model, engine=engine.name)
    conversation, _ = turn.begin_turn(
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
        reply = turn.Reply(store, conversation.id, choice)

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
def local_engine(settings: Settings) -> Iterator[tuple[EngineClient, Supervisor | None]]:
    """A running engine of this data directory, else one started for this command."""
    from assistant.clients.supervisor import Supervisor, find_running

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
    from assistant.records import Completion

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
    from assistant.chat import turn

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
        turn.forget_kv_state(state)
