"""Markdown that is still being written: where it can be cut into blocks that will not change.

A streaming reply is rendered as Markdown as it comes. Re-rendering all of it for every batch
of tokens costs more with each token; instead, the view renders each finished block once and
re-renders only the block being written (the tail). A block is finished at a blank line outside
a code fence, or at the end of a closed fence. An open fence in the tail is closed for display,
so a code block shows as code while it streams.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def stable_end(text: str) -> int:
    """How much of ``text`` is made of finished blocks: an index just after a blank line (or a
    closing fence line) outside any code fence; 0 when no block is finished yet."""
    end = 0
    fence: str | None = None
    position = 0
    content = False  # a block of something but whitespace has begun
    lines = text.split("\n")
    for i, line in enumerate(lines):
        last = i == len(lines) - 1  # not ended by a newline yet: may still grow
        position_after = position + len(line) + 1
        match = _FENCE.match(line)
        if fence is None:
            if match and not last:
                fence = match.group(1)[0] * len(match.group(1))
            elif not line.strip() and not last and content:
                end = position_after  # a blank line: what came before is a finished block
        elif match and match.group(1).startswith(fence) and not last:
            fence = None
            end = position_after  # the fence closed: the code block is finished
        content |= bool(line.strip())
        position = position_after
    return min(end, len(text))


def displayable(tail: str) -> str:
    """The unfinished tail as it should show now: an open code fence closed."""
    fence: str | None = None
    for line in tail.split("\n"):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * len(match.group(1))
        elif fence is not None and match and match.group(1).startswith(fence):
            fence = None
    if fence is None:
        return tail
    return tail + ("\n" if not tail.endswith("\n") else "") + fence
