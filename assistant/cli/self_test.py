"""``assistant --self-test``: does this installation work? One line, and the exit status.

It starts an engine process, loads the default (or given) model, generates a few tokens, round-
trips a throwaway database, and renders Markdown in the chat view offscreen.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from assistant.cli import EXIT_FAILED, EXIT_OK
from assistant.clients.supervisor import Supervisor
from assistant.conversations.storage import Store
from assistant.errors import AssistantError
from assistant.models import library
from assistant.records import FinishReason, GenerationParams

log = logging.getLogger(__name__)


def self_test(model: str | None, check_gui: Callable[[], None]) -> int:
    """Start an engine, load a model, generate a few tokens, round-trip the database, then
    ``check_gui`` (the GUI toolkit offscreen, from the face that may import it); one line."""

    started = time.monotonic()
    supervisor = Supervisor(announce=False)
    try:
        path = library.resolve_model(model)
        client = supervisor.start()
        loaded = client.load(path, n_ctx=512, n_gpu_layers=-1)
        completion = client.chat(
            [{"role": "user", "content": "Say hello."}],
            GenerationParams(max_tokens=8, temperature=0.0, seed=1),
        )
        if completion.finish_reason == FinishReason.ERROR or completion.completion_tokens == 0:
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
        documents = _check_embeddings(client)
        tools = _check_tools(client)
        check_gui()
    except AssistantError as exc:
        print(f"self-test failed: {exc}")
        return EXIT_FAILED
    except Exception as exc:  # the self-test reports bugs too, in one line
        log.exception("self-test crashed")
        print(f"self-test failed: {type(exc).__name__}: {exc}")
        return EXIT_FAILED
    finally:
        supervisor.stop()
    print(
        f"self-test passed: {path.name} generated {completion.completion_tokens} tokens at "
        f"{completion.tokens_per_s:.1f} tokens/s in the engine process on {loaded.backend}; "
        f"database ok; {documents}; {tools}; {time.monotonic() - started:.1f} s"
    )
    if loaded.backend == "CPU" and (  # a GPU, or a GPU module, this build does not use
        "found, but" in loaded.backend_note or "tried but not used" in loaded.backend_note
    ):
        print(f"note: {loaded.backend_note}")
    return EXIT_OK


def _check_tools(client) -> str:  # noqa: ANN001 - an EngineClient
    """A tool call held to its schema by the engine's grammar, read back from the stream; and
    the MCP client that the chat's tools use, there to import."""
    import mcp.client.stdio  # noqa: F401 - in the bundle (PyInstaller)
    import mcp.client.streamable_http  # noqa: F401

    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"], "additionalProperties": False}}}  # fmt: skip
    _, calls = client.chat_tools(
        [{"role": "user", "content": "What is the weather in Paris?"}],
        GenerationParams(max_tokens=48, temperature=0.0, seed=1), [weather],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )  # fmt: skip
    try:
        args = json.loads(calls[0]["function"]["arguments"]) if calls else None
    except ValueError:
        args = None
    if not isinstance(args, dict) or not isinstance(args.get("city"), str):
        raise AssistantError(f"a tool call did not come back whole ({calls!r})")
    return "tools ok"


def _check_embeddings(client) -> str:  # noqa: ANN001 - an EngineClient
    """The built-in embedding model (documents): made if needed, loaded beside the chat model,
    and ranking a related sentence above an unrelated one."""
    from assistant.documents import embedding_models

    model = embedding_models.ensure_builtin()
    if model is None:
        return f"documents: no embedding model (install it: {embedding_models.BUILTIN_HINT})"
    vectors = client.embed(
        ["Where is my data kept?", "Your chats are stored on this computer.",
         "Volcanoes erupt lava."], model.name, interactive=True,
    )  # fmt: skip
    related, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    if not related > unrelated:
        raise AssistantError(
            f"the embedding model ranks wrongly ({related:.2f} <= {unrelated:.2f})"
        )
    return f"documents ok ({embedding_models.BUILTIN_NAME}, {vectors.shape[1]} dimensions)"
