"""One turn's lifecycle (assistant/chat/turn.py) on a real SQLite file: the reply row is written at
most every CHECKPOINT_INTERVAL_S while it streams, and finished exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.chat import turn
from assistant.chat.turn import ModelChoice
from assistant.conversations.storage import Store
from assistant.records import Completion, FinishReason


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_streaming_reply_is_checkpointed_at_most_once_an_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    with Store(tmp_path / "chat.db") as store:
        writes: list[tuple[float, str]] = []
        real = store.checkpoint_reply

        def checkpoint(message_id: int, content: str) -> None:
            writes.append((clock.now, content))
            real(message_id, content)

        monkeypatch.setattr(store, "checkpoint_reply", checkpoint)
        choice = ModelChoice("m", engine="box")
        conversation, _ = turn.begin_turn(store, None, "Hi", model=choice)
        reply = turn.Reply(store, conversation.id, choice, clock=clock)
        for i in range(24):  # a token every 1/8 s for 3 s
            clock.now += 0.125
            reply.append(f"t{i} ")
        assert [round(t - 100.0, 1) for t, _ in writes] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
        assert store.messages(conversation.id)[-1].content == reply.text  # all of it, at 3.0 s
        assert store.messages(conversation.id)[-1].finish_reason is None
        done = reply.finish(Completion.failed("cut", reply.text, "m"))
        assert done is not None and done.finish_reason == FinishReason.ERROR
        assert reply.finish(None) is None  # exactly once
