"""The thinking of a reasoning model told apart from its answer, however the pieces fall."""

from __future__ import annotations

import pytest

from assistant.reasoning import ThinkSplitter


def split(pieces: list[str], *, opened: bool = False) -> tuple[str, str, list[str], list[str]]:
    answers: list[str] = []
    thoughts: list[str] = []
    splitter = ThinkSplitter(answers.append, thoughts.append, opened=opened)
    for piece in pieces:
        splitter.feed(piece)
    splitter.finish()
    assert splitter.answer == "".join(answers)
    return splitter.reasoning, splitter.answer, thoughts, answers


@pytest.mark.parametrize(
    "pieces",
    [
        ["<think>\nI should greet.\n</think>\n\nHello!"],
        ["<", "think>", "\nI should", " greet.\n</", "think", ">\n", "\nHel", "lo!"],
        ["  <think>I should greet.</think>Hello!"],
        list("<think>\nI should greet.\n</think>\n\nHello!"),  # one character at a time
    ],
)
def test_tags_are_found_wherever_the_pieces_cut_them(pieces: list[str]) -> None:
    reasoning, answer, thoughts, _ = split(pieces)
    assert reasoning == "I should greet."
    assert answer == "Hello!"
    assert "".join(thoughts).strip() == "I should greet."


def test_a_template_that_opens_the_thinking_starts_inside_it() -> None:
    reasoning, answer, _, _ = split(["I should", " greet.</think>", "\n\nHello!"], opened=True)
    assert (reasoning, answer) == ("I should greet.", "Hello!")


def test_thinking_that_never_ends_is_all_reasoning() -> None:
    reasoning, answer, _, answers = split(["Hmm, let me see. Still", " thinking </th"], opened=True)
    assert reasoning == "Hmm, let me see. Still thinking </th"
    assert answer == "" and answers == []


@pytest.mark.parametrize(
    ("pieces", "answer"),
    [
        (["Hello ", "there"], "Hello there"),
        (["<", "div>markup</div>"], "<div>markup</div>"),  # begins like a tag, is not one
        (["<thin", "king cap>"], "<thinking cap>"),
        (["<"], "<"),  # held to the end, then it is the answer
        (["The tag <think> in the middle", " stays"], "The tag <think> in the middle stays"),
    ],
)
def test_a_reply_without_thinking_is_all_answer(pieces: list[str], answer: str) -> None:
    reasoning, got, thoughts, _ = split(pieces)
    assert (reasoning, got, thoughts) == ("", answer, [])
