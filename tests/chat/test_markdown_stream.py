"""Where streaming Markdown can be cut into blocks that will not change."""

from __future__ import annotations

import pytest

from assistant.chat.markdown_stream import displayable, stable_end


@pytest.mark.parametrize(
    ("text", "finished"),
    [
        ("Hello", ""),
        ("Hello\n\nWorld", "Hello\n\n"),
        ("A\n\nB\n\nC is still", "A\n\nB\n\n"),
        ("Intro\n\n```py\ncode\n\nmore code", "Intro\n\n"),  # a blank line inside a fence
        ("```py\ncode\n```\nAfter", "```py\ncode\n```\n"),  # the closed fence is a block
        ("```py\ncode\n```", ""),  # the closing line may still grow ("````")
        ("\n\nLeading blank lines", ""),
    ],
)
def test_finished_blocks(text: str, finished: str) -> None:
    assert text[: stable_end(text)] == finished


def test_an_open_fence_is_closed_for_display() -> None:
    assert displayable("```python\nx = 1") == "```python\nx = 1\n```"
    assert displayable("~~~~\nx\n") == "~~~~\nx\n~~~~"
    assert displayable("Plain **bold") == "Plain **bold"
    assert displayable("```\nx\n```\n") == "```\nx\n```\n"
