"""Pieces cross from the inference thread to the event loop in order, with few wake-ups."""

from __future__ import annotations

import asyncio
import threading

from assistant.engine.handoff import Outbox


def test_pieces_arrive_in_order_and_the_end_comes_last() -> None:
    async def main() -> tuple[list[list[object]], int]:
        loop = asyncio.get_running_loop()
        wakeups = 0
        real = loop.call_soon_threadsafe

        def counting(*args: object) -> object:
            nonlocal wakeups
            wakeups += 1
            return real(*args)  # type: ignore[arg-type]

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        outbox = Outbox(loop)
        queues: list[asyncio.Queue[object]] = [asyncio.Queue() for _ in range(16)]

        def inference_thread() -> None:  # 16 sequences, 200 steps, then each one's end
            for step in range(200):
                for i, queue in enumerate(queues):
                    outbox.put(queue, (i, step))
            for queue in queues:
                outbox.put(queue, None)

        worker = threading.Thread(target=inference_thread)
        worker.start()
        received: list[list[object]] = []
        for queue in queues:
            items = []
            while (item := await queue.get()) is not None:
                items.append(item)
            received.append(items)
        worker.join()
        return received, wakeups

    received, wakeups = asyncio.run(main())
    assert received == [[(i, step) for step in range(200)] for i in range(16)]
    assert wakeups < 16 * 201  # bursts share a wake-up (how many depends on the scheduler)
