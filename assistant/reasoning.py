"""A reasoning model's thinking, told apart from its answer while the reply streams.

DeepSeek R1, Qwen3, QwQ and their kin write ``<think>…</think>`` before the answer. Some chat
templates open the ``<think>`` themselves at the end of the prompt (R1's newer ones), so the
reply starts inside the thinking and only the ``</think>`` shows. The thinking is kept apart:
shown folded above the answer, stored in its own column, and never sent back in later turns
(the templates of these models expect it stripped).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

OPEN = "<think>"
CLOSE = "</think>"


class _State(enum.Enum):
    START = enum.auto()  # nothing but whitespace yet: a <think> may still come
    THINKING = enum.auto()
    AFTER = enum.auto()  # just after </think>: whitespace before the answer is dropped
    ANSWER = enum.auto()


def _tag_start_held(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that ``tag`` begins with (a tag cut in two)."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return k
    return 0


class ThinkSplitter:
    """Text pieces in; reasoning to ``on_reasoning`` and the answer to ``on_answer``, as they
    come. ``opened``: the prompt ended with ``<think>`` (the reply starts inside it)."""

    def __init__(
        self,
        on_answer: Callable[[str], None] | None = None,
        on_reasoning: Callable[[str], None] | None = None,
        *,
        opened: bool = False,
    ):
        self._on_answer = on_answer
        self._on_reasoning = on_reasoning
        self._state = _State.THINKING if opened else _State.START
        self._fresh_thought = True  # whitespace right after <think> is dropped
        self._held = ""
        self._answer: list[str] = []
        self._reasoning: list[str] = []

    @property
    def answer(self) -> str:
        return "".join(self._answer)

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning).rstrip()

    def feed(self, text: str) -> None:
        buf, self._held = self._held + text, ""
        while buf:
            if self._state is _State.START:
                stripped = buf.lstrip()
                if stripped.startswith(OPEN):
                    self._state, buf = _State.THINKING, stripped[len(OPEN) :]
                elif not stripped or OPEN.startswith(stripped):
                    self._held = buf  # whitespace, or the beginning of "<think>"
                    return
                else:
                    self._state = _State.ANSWER
            elif self._state is _State.THINKING:
                end = buf.find(CLOSE)
                thought = buf if end < 0 else buf[:end]
                held = _tag_start_held(thought, CLOSE) if end < 0 else 0
                self._think(thought[: len(thought) - held])
                if end < 0:
                    self._held = thought[len(thought) - held :]
                    return
                self._state, buf = _State.AFTER, buf[end + len(CLOSE) :]
            elif self._state is _State.AFTER:
                buf = buf.lstrip()
                if buf:
                    self._state = _State.ANSWER
            else:
                self._say(buf)
                return

    def finish(self) -> None:
        """The reply ended: what was held back is the answer (or, inside thinking, thought)."""
        held, self._held = self._held, ""
        if not held:
            return
        if self._state is _State.THINKING:
            self._think(held)
        elif self._state is not _State.AFTER:
            self._say(held.lstrip() if self._state is _State.START else held)

    def _think(self, text: str) -> None:
        if self._fresh_thought:
            text = text.lstrip()
            if not text:
                return
            self._fresh_thought = False
        if text:
            self._reasoning.append(text)
            if self._on_reasoning is not None:
                self._on_reasoning(text)

    def _say(self, text: str) -> None:
        if text:
            self._answer.append(text)
            if self._on_answer is not None:
                self._on_answer(text)
