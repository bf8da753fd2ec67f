"""A conversation as a file of its own: Markdown to read, JSON with every field to keep.

Also the one line of facts under each message (``describe_message``), which the chat's footer
shows in short and an export in full.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict
from datetime import UTC, datetime

from assistant import APP_NAME, __version__
from assistant.conversations.storage import Conversation, Message, Store
from assistant.records import FinishReason, empty_reply_note


class ExportFormat(enum.StrEnum):
    """How a conversation is exported; the value is also the file's suffix."""

    MARKDOWN = "md"
    JSON = "json"

    @property
    def label(self) -> str:
        return "Markdown" if self is ExportFormat.MARKDOWN else "JSON"


def conversation_text(store: Store, conversation_id: int, fmt: ExportFormat) -> str:
    """The text of the export file of a stored conversation (StorageError when it is gone)."""
    return render(store.conversation(conversation_id), store.messages(conversation_id), fmt)


def render(conversation: Conversation, messages: list[Message], fmt: ExportFormat) -> str:
    """The text of the export file."""
    if ExportFormat(fmt) is ExportFormat.JSON:
        return json.dumps(as_json(conversation, messages), indent=2, ensure_ascii=False)
    return as_markdown(conversation, messages)


def as_markdown(conversation: Conversation, messages: list[Message]) -> str:
    lines = [f"# {conversation.title}", ""]
    lines.append(f"- Created: {conversation.created_at}")
    lines.append(f"- Updated: {conversation.updated_at}")
    if conversation.model:
        lines.append(f"- Model: {conversation.model}")
    if conversation.engine:
        lines.append(f"- Engine: {conversation.engine} (remote)")
    if conversation.system_prompt:
        lines.append(f"- System prompt: {conversation.system_prompt}")
    lines.append(f"- Exported from {APP_NAME} {__version__}")
    for message in messages:
        lines += [
            "",
            f"## {message.role.capitalize()}",
            "",
            f"*{describe_message(message, export=True)}*",
        ]
        if message.reasoning:
            # Marked as the model's reasoning, quoted so that it reads apart from the answer.
            quoted = "\n".join("> " + line for line in message.reasoning.splitlines())
            lines += ["", "> **Reasoning**", ">", quoted]
        if calls := message.tool_call_list:
            lines += ["", "**Tool calls**", ""]
            for call in calls:
                lines.append(f"- `{call.get('tool', '?')}` {call.get('arguments', '')}: "
                             f"{call.get('status', '')}")  # fmt: skip
                if call.get("result"):
                    quoted = "\n".join("  > " + ln for ln in str(call["result"]).splitlines())
                    lines.append(quoted)
        lines += ["", message.content]
        if sources := message.source_list:
            lines += ["", "**Sources**", ""]
            for number, source in enumerate(sources, 1):
                where = f", {source['where']}" if source.get("where") else ""
                lines.append(f"{number}. {source.get('path', '?')}{where}")
    return "\n".join(lines).rstrip("\n") + "\n"


def as_json(conversation: Conversation, messages: list[Message]) -> dict[str, object]:
    """The conversation and its messages with all metadata, ready for json.dumps."""
    return {
        "app": APP_NAME,
        "app_version": __version__,
        "format_version": 1,
        "exported_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "conversation": asdict(conversation),
        "messages": [asdict(message) for message in messages],
    }


def describe_message(message: Message, *, export: bool = False) -> str:
    """A reply's facts in one line: who wrote it, how it ended, how long and how fast. The
    chat's footer shows the short form; an export (``export``) adds the time, why it failed,
    and user messages get their time alone."""
    parts: list[str] = []
    if message.writer:  # "gpu-box / model" for a remote engine's reply
        parts.append(message.writer if export else message.writer.removesuffix(".gguf"))
    if export:
        parts.append(message.finished_at or message.created_at)
    if message.finish_reason and FinishReason(message.finish_reason).label:
        parts.append(FinishReason(message.finish_reason).label)
    elif message.role == "assistant" and message.finish_reason is None:
        parts.append("unfinished")
    if message.role == "assistant" and (
        note := empty_reply_note(message.content, message.reasoning, message.finish_reason)
    ):
        parts.append(f"no text: {note}")
    if export and message.error:
        parts.append(message.error)
    if message.completion_tokens:
        parts.append(f"{message.completion_tokens} tokens")
        if message.duration_ms and not export:
            parts.append(f"{message.completion_tokens / (message.duration_ms / 1000):.1f} tok/s")
    if message.ttft_ms is not None and message.completion_tokens and not export:
        parts.append(f"first token {message.ttft_ms / 1000:.2f} s")
    if message.duration_ms and export:
        parts.append(f"{message.duration_ms / 1000:.1f} s")
    return " · ".join(parts)
