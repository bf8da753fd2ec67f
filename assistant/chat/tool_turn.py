"""A reply that may call the tools of the person's MCP servers (tools/mcp_servers.py): rounds
of the model answering with calls, each call approved or not by the person, run, and its
result given back, until the model answers in words. The GUI and the CLI each ask the person
their own way (``approve``); every call is handed to ``on_calls`` as it ends, to be stored."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.records import Completion, FinishReason, GenerationParams
from assistant.tools.mcp_servers import McpTools, Tool

MAX_ROUNDS = 6  # tool rounds in one reply; the last one must answer in words
ONCE, ALWAYS, DENY = "once", "always", "deny"

Approve = Callable[[Tool, str], str]  # the tool and its arguments (JSON) -> ONCE, ALWAYS, DENY


def reply(
    client: Any,  # an EngineClient: chat_tools()
    mcp: McpTools,
    history: list[dict[str, Any]],
    params: GenerationParams,
    model: str,
    *,
    approve: Approve,
    allowed: set[str],
    on_calls: Callable[[list[dict[str, Any]]], None],
    first_choice: str | dict[str, Any] = "auto",
    stop: threading.Event | None = None,
) -> Completion:
    """The reply's Completion; ``allowed`` (tool keys that need no question) grows with
    "always" answers."""
    tools = [t.openai() for t in mcp.tools]
    messages = list(history)
    log: list[dict[str, Any]] = []
    choice: dict[str, Any] = {}
    for round_ in range(MAX_ROUNDS):
        last = round_ == MAX_ROUNDS - 1 or not tools
        step = first_choice if round_ == 0 else "auto"
        choice = client.chat_tools(messages, params, tools, model=model,
                                   tool_choice="none" if last else step)  # fmt: skip
        message = choice["message"]
        calls = message.get("tool_calls") or []
        if not calls or (stop is not None and stop.is_set()):
            break
        messages.append({"role": "assistant", "content": message.get("content"),
                         "tool_calls": calls})  # fmt: skip
        for call in calls:
            entry = _run(mcp, call, approve, allowed, stop)
            log.append(entry)
            on_calls(list(log))
            messages.append({"role": "tool", "tool_call_id": call.get("id", ""),
                             "content": entry["result"]})  # fmt: skip
    if stop is not None and stop.is_set():
        text = choice.get("message", {}).get("content") or ""
        return _completion(choice, model, text, FinishReason.CANCELLED)
    text = choice.get("message", {}).get("content") or ""
    reason = FinishReason.LENGTH if choice.get("finish_reason") == "length" else FinishReason.STOP
    return _completion(choice, model, text, reason)


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
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return {**entry, "status": "failed", "result": "The arguments were not a JSON object."}
    result = mcp.call(tool, parsed)
    return {**entry, "status": "failed" if result.is_error else "ran", "result": result.text}


def _completion(choice: dict[str, Any], model: str, text: str, reason: FinishReason) -> Completion:
    usage = choice.get("usage") or {}
    return Completion(
        text=text,
        finish_reason=reason,
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        cached_tokens=0, ttft_s=0.0, duration_s=0.0, tokens_per_s=0.0,
        context_tokens=int(usage.get("total_tokens", 0)), trimmed_messages=0,
        model_file=Path(model).name,
    )  # fmt: skip
