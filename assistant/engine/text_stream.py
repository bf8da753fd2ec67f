"""A reply's text as it streams: token bytes in, text out, stopped at the first stop string.

One per sequence; the scheduler feeds it each sampled token's bytes.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence


class TextStream:
    """Token bytes in, reply text out.

    Never splits a UTF-8 character, cuts the reply at the first stop string without emitting any
    of it, and trims whitespace at both ends (a held-back space is emitted once text follows).
    Per-token work depends on the piece and the stop strings, not on the reply's length.
    """

    def __init__(self, stop_strings: Sequence[str], on_text: Callable[[str], None] | None):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = tuple(s for s in stop_strings if s)
        self._longest = max((len(s) for s in self._stops), default=0)
        self._on_text = on_text
        self._pending = ""  # decoded but not emitted: whitespace and a possible stop's beginning
        self._parts: list[str] = []
        self._started = False
        self._done = False

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def feed(self, data: bytes) -> bool:
        """Add a token's bytes; True when a stop string completed (the reply ends there)."""
        new = self._decoder.decode(data)
        if not new:
            return False
        pending = self._pending + new
        if self._stops:
            # A stop string not found before must end in the new text.
            window = max(0, len(pending) - len(new) - self._longest + 1)
            cuts = [i for s in self._stops if (i := pending.find(s, window)) >= 0]
            if cuts:
                self._pending = pending[: min(cuts)]
                self.finish()
                return True
        held = self._stop_prefix_length(pending)
        ready, rest = pending[: len(pending) - held], pending[len(pending) - held :]
        if not self._started:
            ready = ready.lstrip()
        body = ready.rstrip()
        if body:
            self._emit(body)
        self._pending = ready[len(body) :] + rest
        return False

    def finish(self) -> None:
        """End of the reply: emit what was held back, less trailing whitespace."""
        if self._done:
            return
        self._done = True
        tail = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        if not self._started:
            tail = tail.lstrip()
        tail = tail.rstrip()
        if tail:
            self._emit(tail)

    def _emit(self, text: str) -> None:
        self._started = True
        self._parts.append(text)
        if self._on_text is not None:
            self._on_text(text)

    def _stop_prefix_length(self, text: str) -> int:
        """Length of the longest end of ``text`` that a stop string begins with."""
        best = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:k]):
                    best = k
                    break
        return best
