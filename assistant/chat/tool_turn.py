"""A reply that may call the tools of the person's MCP servers (tools/mcp_servers.py): rounds
of the model answering with calls, each call approved or not by the person, run, and its
result given back, until the model answers in words. The GUI and the CLI each ask the person
their own way (``approve``); every call is handed to ``on_calls`` as it ends, to be stored."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError, EngineUnavailable
from assistant.records import Completion, FinishReason, GenerationParams
from assistant.tools.mcp_servers import McpTools, Tool

MAX_ROUNDS = 6  # tool rounds in one reply; the last one must answer in words
ONCE, ALWAYS, DENY = "once", "always", "deny"

Approve = Callable[[Tool, str], str]  # the tool and its arguments (JSON) -> ONCE, ALWAYS, DENY


def reply(
    client: Any,  # an OpenAIClient (our engine's or a remote one): chat_tools()
    mcp: McpTools,
    history: list[dict[str, Any]],
    params: GenerationParams,
    model: str,
    *,
    approve: Approve,
    allowed: set[str],
    on_calls: Callable[[list[dict[str, Any]]], None],
    first_choice: str | dict[str, Any] = "auto",
    on_text: Callable[[str], None] | None = None,
    on_reasoning: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> Completion:
    """The reply's Completion, its text all the rounds' text as it streamed to ``on_text``;
    ``allowed`` (tool keys that need no question) grows with "always" answers."""
    tools = [t.openai() for t in mcp.tools]
    messages = list(history)
    log: list[dict[str, Any]] = []
    said: list[str] = []  # the text of every round, as shown
    thoughts: list[str] = []  # the reasoning of every round

    def show(piece: str) -> None:
        if not said[-1] and any(said[:-1]):
            piece = "\n\n" + piece  # a new round's words, apart from the last round's
        said[-1] += piece
        if on_text is not None:
            on_text(piece)

    def think(piece: str) -> None:
        thoughts.append(piece)
        if on_reasoning is not None:
            on_reasoning(piece)

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    completion: Completion | None = None
    for round_ in range(MAX_ROUNDS):
        if round_ and stopped():  # stopped while the calls ran: no next round
            break
        last = round_ == MAX_ROUNDS - 1 or not tools
        step = first_choice if round_ == 0 else "auto"
        said.append("")
        try:
            completion, calls = client.chat_tools(
                messages, params, tools, model=model, tool_choice="none" if last else step,
                on_text=show, on_reasoning=think, stop=stop,
            )  # fmt: skip
        except EngineUnavailable as exc:  # what was shown of every round is kept
            exc.partial_text, exc.partial_reasoning = "".join(said), "".join(thoughts)
            raise
        except AssistantError as exc:
            if round_ == 0:
                raise
            failed = Completion.failed(str(exc), "".join(said), Path(model).name)
            return dataclasses.replace(failed, reasoning="".join(thoughts))
        if not calls or completion.finish_reason in (FinishReason.ERROR, FinishReason.CANCELLED):
            break
        if stopped():
            break
        messages.append({"role": "assistant", "content": said[-1].strip() or None,
                         "tool_calls": calls})  # fmt: skip
        for call in calls:
            entry = _run(mcp, call, approve, allowed, stop)
            log.append(entry)
            on_calls(list(log))
            messages.append({"role": "tool", "tool_call_id": call.get("id", ""),
                             "content": entry["result"]})  # fmt: skip
    assert completion is not None
    reason = FinishReason.CANCELLED if stopped() else completion.finish_reason
    return dataclasses.replace(completion, text="".join(said), finish_reason=reason,
                               reasoning="".join(thoughts) or completion.reasoning)  # fmt: skip


def _run(
    mcp: McpTools,
    call: dict[str, Any],
    approve: Approve,
    allowed: set[str],
    stop: threading.Event | None,
) -> dict[str, Any]:
    function = call.get("function", {})
    tool = mcp.find(function.get("name", ""))
    arguments = function.get("arguments") or "{}"
    if tool is None:
        return {"tool": function.get("name", "?"), "arguments": arguments, "status": "failed",
                "result": "There is no such tool."}  # fmt: skip
    entry = {"tool": tool.key, "server": tool.server, "arguments": arguments}
    if stop is not None and stop.is_set():
        return {**entry, "status": "denied", "result": "The reply was stopped."}
    if tool.key not in allowed:
        answer = approve(tool, arguments)
        if answer == ALWAYS:
            allowed.add(tool.key)
        elif answer != ONCE:
            return {**entry, "status": "denied", "result": "The person declined this call."}
        if stop is not None and stop.is_set():  # stopped while being asked
            return {**entry, "status": "denied", "result": "The reply was stopped."}
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return {**entry, "status": "failed", "result": "The arguments were not a JSON object."}
    result = mcp.call(tool, parsed)
    return {**entry, "status": "failed" if result.is_error else "ran", "result": result.text}
