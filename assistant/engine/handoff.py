"""Pieces of text from the inference thread to the HTTP thread's event loop, one wake-up a burst.

One decode step of 16 sequences writes 16 pieces. Handing each over with
``loop.call_soon_threadsafe`` wakes the loop 16 times (a write to its self-pipe, a turn of the
loop each), and on a machine with few cores that work runs while the next ``llama_decode``
does, on a core its threads wanted. The outbox wakes the loop once for whatever arrived
before the loop got to it: pieces still reach each request's queue in order, and the end of a
reply, sent the same way, never overtakes its last pieces.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class Outbox:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[tuple[asyncio.Queue[Any], Any]] = []

    def put(self, queue: asyncio.Queue[Any], item: Any) -> None:
        """From any thread: ``queue.put_nowait(item)`` on the loop, soon, in order."""
        with self._lock:
            self._items.append((queue, item))
            if len(self._items) > 1:
                return  # a wake-up is on its way already
        try:
            self._loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: the server is shutting down
            pass

    def _deliver(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        for queue, item in items:
            queue.put_nowait(item)
