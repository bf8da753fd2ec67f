"""Turning a conversation into prompt text: the model's own chat template, or a plain fallback.

The template comes from the GGUF (``tokenizer.chat_template``) and is rendered with Jinja2 in a
sandbox, the way Hugging Face transformers does. A model without one gets an explicit plain
"User:/Assistant:" format and a note saying so, never a silent guess at some other model's format.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from assistant.errors import GenerationError
from assistant.reasoning import OPEN as OPEN_THINKING

log = logging.getLogger(__name__)

Messages = Sequence[dict[str, str]]

PLAIN_TEMPLATE_NOTE = "This model has no chat template; using a plain System/User/Assistant format."
_PLAIN_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}
# The plain format's reply ends where the model starts writing the next turn itself.
PLAIN_STOP_STRINGS = ("\nUser:", "\nAssistant:", "\nSystem:")

# End-of-turn markers that fine-tunes sometimes write as plain text instead of as their special
# token; stopping on the text too keeps them out of the reply. Only markers the template itself
# uses are stop strings for that model.
_TURN_MARKERS = (
    "<|im_end|>",
    "<|im_start|>",
    "<end_of_turn>",
    "<start_of_turn>",
    "<|eot_id|>",
    "<|start_header_id|>",
    "<|end|>",
    "<|endoftext|>",
    "<|END_OF_TURN_TOKEN|>",
    "<|return|>",
    "<|end_of_text|>",
    "</s>",
)


class ChatTemplateError(GenerationError):
    """The model's chat template could not render this conversation."""


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    # Jinja's own tojson HTML-escapes; templates written for transformers expect plain JSON.
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class ChatFormat:
    """Renders messages for one model; ``template=None`` is the plain fallback."""

    def __init__(self, template: str | None, *, bos_token: str = "", eos_token: str = ""):
        self.template_source = template
        self.bos_token = bos_token
        self.eos_token = eos_token
        # Learned on first use: the template raised with a system message and worked with the
        # system prompt folded into the first user turn (Gemma, Mistral's older templates).
        self.folds_system = False
        if template is None:
            self._template: jinja2.Template | None = None
            self.note: str | None = PLAIN_TEMPLATE_NOTE
            self.stop_strings: tuple[str, ...] = PLAIN_STOP_STRINGS
            return
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        try:
            self._template = env.from_string(template)
        except jinja2.TemplateError as e:
            # A broken template is the model's problem, not a reason to refuse it: fall back.
            log.warning("The model's chat template does not compile (%s); using plain format", e)
            self._template = None
            self.template_source = None
            self.note = (
                "This model's chat template could not be read; using a plain "
                "System/User/Assistant format."
            )
            self.stop_strings = PLAIN_STOP_STRINGS
            return
        self.note = None
        markers = [m for m in _TURN_MARKERS if m in template]
        if eos_token and len(eos_token) > 1 and eos_token not in markers:
            markers.append(eos_token)
        self.stop_strings = tuple(markers)

    @functools.cached_property
    def opens_thinking(self) -> bool:
        """Whether the prompt ends inside a ``<think>`` the template opened (DeepSeek R1's newer
        templates): the reply then starts with the model's thinking."""
        if self._template is None:
            return False
        try:
            prompt = self.render([{"role": "user", "content": "Hello"}])
        except ChatTemplateError:
            return False
        return prompt.rstrip().endswith(OPEN_THINKING)

    @property
    def knows_tools(self) -> bool:
        """Whether the template renders tools itself (Qwen, Hermes, Llama 3.1, Mistral...)."""
        return self._template is not None and "tools" in (self.template_source or "")

    def render(self, messages: Messages, tools: list[dict[str, Any]] | None = None) -> str:
        """Prompt text for ``messages``, ending where the assistant's reply begins."""
        if self._template is None:
            return _render_plain(messages)
        has_system = bool(messages) and messages[0].get("role") == "system"
        if has_system and self.folds_system:
            return self._render(fold_system(messages), tools)
        try:
            return self._render(messages, tools)
        except ChatTemplateError as first:
            if not has_system:
                raise
            try:
                text = self._render(fold_system(messages), tools)
            except ChatTemplateError:
                raise first from None
            log.info("The chat template rejects a system message (%s); folding it in", first)
            self.folds_system = True
            return text

    def _render(self, messages: Messages, tools: list[dict[str, Any]] | None = None) -> str:
        assert self._template is not None
        extra = {"tools": tools} if tools else {}
        try:
            return self._template.render(
                messages=[dict(m) for m in messages],
                add_generation_prompt=True,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                **extra,
            )
        except jinja2.TemplateError as e:
            raise ChatTemplateError(f"The model's chat template failed: {e}") from e
        except Exception as e:  # noqa: BLE001 - templates are code from the model file
            raise ChatTemplateError(f"The model's chat template failed: {e!r}") from e


def merge_turns(messages: Messages) -> list[dict[str, str]]:
    """Join consecutive messages of the same role into one turn.

    A stopped or failed reply leaves two user messages in a row, and many templates (Gemma,
    Mistral) refuse anything but strictly alternating roles: without this one empty reply would
    make the whole conversation unusable.
    """
    merged: list[dict[str, str]] = []
    for m in messages:
        if (
            merged
            and merged[-1].get("role") == m.get("role")
            and m.get("role") not in ("system", "tool")
            and not m.get("tool_calls")
            and not merged[-1].get("tool_calls")
        ):
            merged[-1]["content"] = f"{merged[-1]['content']}\n\n{m.get('content', '')}"
        else:
            merged.append(dict(m))
    return merged


def fold_system(messages: Messages) -> list[dict[str, str]]:
    """The system prompt moved into the first user message, for templates without a system role."""
    system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
    for m in rest:
        if m.get("role") == "user":
            m["content"] = f"{system}\n\n{m['content']}" if system else m["content"]
            return rest
    return [{"role": "user", "content": system}, *rest]


def _render_plain(messages: Messages) -> str:
    parts = [
        f"{_PLAIN_LABELS.get(m.get('role', 'user'), 'User')}: {m.get('content', '')}"
        for m in messages
    ]
    # No space after the last colon: most tokenizers fold the space into the reply's first word.
    return "\n\n".join([*parts, "Assistant:"])


def fit_messages(
    messages: Messages, count: Callable[[Messages], int], budget: int
) -> tuple[list[dict[str, str]], int]:
    """Drop the oldest turns until ``count(messages) <= budget``; returns (messages, dropped).

    A leading system message and the last message are always kept. The history is cut only where
    a user message begins, so templates that insist on alternating roles still render. If even the
    shortest history is too long it is returned as it is: the caller truncates further.
    """
    msgs = [dict(m) for m in messages]
    head = msgs[:1] if msgs and msgs[0].get("role") == "system" else []
    body = msgs[len(head) :]
    if count(msgs) <= budget or len(body) <= 1:
        return msgs, 0
    # Cut points: drop body[:k] so that what is left starts with a user message; the last
    # message always stays. Fewer dropped = better, and counts shrink as k grows: bisect.
    cuts = [k for k in range(1, len(body)) if body[k].get("role") == "user"]
    if not cuts or cuts[-1] != len(body) - 1:
        cuts.append(len(body) - 1)
    lo, hi = 0, len(cuts) - 1
    if count(head + body[cuts[hi] :]) > budget:
        return head + body[cuts[hi] :], cuts[hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if count(head + body[cuts[mid] :]) <= budget:
            hi = mid
        else:
            lo = mid + 1
    return head + body[cuts[lo] :], cuts[lo]
