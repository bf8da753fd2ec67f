"""How llama.cpp names the parts of a split GGUF (``model-00002-of-00003.gguf``): the one place
that parses and writes those names, for the Hub listing, the models folder and downloads."""

from __future__ import annotations

import re

_SPLIT_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)


def split_info(filename: str) -> tuple[int, int] | None:
    """``...-00002-of-00003.gguf`` -> (2, 3); None for a whole file."""
    m = _SPLIT_RE.search(filename)
    return (int(m.group(1)), int(m.group(2))) if m else None


def whole_name(filename: str) -> str:
    """The name the model would have in one file: ``m-00002-of-00003.gguf`` -> ``m.gguf``."""
    return _SPLIT_RE.sub(".gguf", filename)


def part_names(filename: str) -> list[str]:
    """Every part's name, given any part's name (or the split model's whole_name and the part
    count via ``total``); ``[filename]`` for a whole file."""
    split = split_info(filename)
    if split is None:
        return [filename]
    return names_of_parts(whole_name(filename), split[1])


def names_of_parts(whole: str, total: int) -> list[str]:
    """``m.gguf``, 3 -> ``m-00001-of-00003.gguf`` ... ``m-00003-of-00003.gguf``."""
    if total <= 1:
        return [whole]
    stem = whole[: -len(".gguf")] if whole.lower().endswith(".gguf") else whole
    return [f"{stem}-{i:05d}-of-{total:05d}.gguf" for i in range(1, total + 1)]
