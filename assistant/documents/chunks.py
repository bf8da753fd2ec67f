"""Cutting a file's text into passages: about ``size`` characters each, at line breaks where it
can, each sharing its first lines with the end of the one before (so a sentence cut at a border
is whole in one of them), and each knowing its page or lines."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from assistant.documents.reading import Segment

CHUNK_CHARS = 1000  # ~250 tokens of English: all-MiniLM was trained on up to 256
OVERLAP_CHARS = 150


@dataclass(frozen=True)
class Chunk:
    text: str
    page: int | None
    line_start: int | None
    line_end: int | None


def chunk(
    segments: list[Segment], size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS
) -> list[Chunk]:
    return [c for segment in segments for c in _chunk_segment(segment, size, overlap)]


def _chunk_segment(segment: Segment, size: int, overlap: int) -> Iterator[Chunk]:
    first = segment.line or 1
    pieces = [
        (first + i, part)
        for i, line in enumerate(segment.text.splitlines())
        for part in _wrap(line.rstrip(), size)
    ]
    current: list[tuple[int, str]] = []
    length = 0
    for number, text in pieces:
        if current and length + len(text) + 1 > size:
            yield from _emit(current, segment)
            tail: list[tuple[int, str]] = []
            kept = 0
            for piece in reversed(current):
                if kept + len(piece[1]) + 1 > overlap:
                    break
                tail.insert(0, piece)
                kept += len(piece[1]) + 1
            current, length = tail, kept
        current.append((number, text))
        length += len(text) + 1
    yield from _emit(current, segment)


def _emit(pieces: list[tuple[int, str]], segment: Segment) -> Iterator[Chunk]:
    text = "\n".join(t for _, t in pieces).strip()
    if text:
        lines = segment.line is not None
        yield Chunk(
            text,
            segment.page,
            pieces[0][0] if lines else None,
            pieces[-1][0] if lines else None,
        )


def _wrap(line: str, size: int) -> list[str]:
    """A line longer than ``size`` in parts at spaces (or anywhere, for text without any)."""
    if len(line) <= size:
        return [line]
    parts = []
    while len(line) > size:
        cut = line.rfind(" ", size // 2, size)
        cut = cut if cut > 0 else size
        parts.append(line[:cut])
        line = line[cut:].lstrip()
    if line:
        parts.append(line)
    return parts
