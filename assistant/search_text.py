"""Search text for scripts written without spaces (Chinese, Japanese, Thai, ...): bigrams.

FTS5's unicode61 tokenizer splits at spaces and punctuation only, so a sentence of Chinese is
one token and a word inside it cannot be found through the index. The ``messages_cjk`` index
(migration m004) holds, for each message with such a script, its text with every run of those
characters written as overlapping pairs ("今天的会议" -> "今天 天的 的会 会议"). A query word
becomes the phrase of its pairs, which matches exactly where the word appears: a 2-character
word is one token, a longer one a phrase of consecutive tokens. Other text is kept as it is.
"""

from __future__ import annotations

import re

# Hiragana, katakana, CJK ideographs (and extension A, compatibility), Thai, Lao, Myanmar, Khmer.
_RANGES = (
    "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff"
)
UNSPACED = re.compile(f"[{_RANGES}]")
_RUN = re.compile(f"[{_RANGES}]+")
# For the triggers (SQLite's GLOB reads the class by code point): a message needs the index.
GLOB = f"*[{_RANGES}]*"
FUNCTION = "assistant_bigrams"  # registered on every connection the Store opens


def bigrams(text: str) -> str:
    """``text`` with every run of unspaced script written as its overlapping pairs."""

    def pairs(match: re.Match[str]) -> str:
        run = match.group(0)
        if len(run) == 1:
            return f" {run} "
        return " " + " ".join(run[i : i + 2] for i in range(len(run) - 1)) + " "

    return _RUN.sub(pairs, text)


def phrase(word: str) -> str | None:
    """The FTS5 phrase that finds ``word`` in bigram text; None for a single character of an
    unspaced script, which no pair holds (the caller scans for it instead)."""
    if len(word) == 1 and UNSPACED.match(word):
        return None
    tokens = bigrams(word).split()
    return '"' + " ".join(t.replace('"', '""') for t in tokens) + '"' if tokens else None
