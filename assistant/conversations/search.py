"""Search over every message as the user types: newest first, in milliseconds at a million.

``MessageSearch`` answers ``Store.search`` on the Store's own connection. Three indexes serve it
(see migrations.py): ``messages_fts``, a word index (unicode61), for scripts that put spaces
between words; ``messages_trigram``, a trigram index of the messages written in scripts that do
not (Chinese, Japanese, Thai...), where a word is any run of characters; and a LIKE over titles,
which are few and short.

What keeps every query fast, whatever it matches:

- Newest first through FTS5's rowid order with a LIMIT: it stops after ``limit`` hits instead of
  ranking every match (a word in most of a million messages: 8 s ranked, 6 ms this way).
- The words as typed are looked up first. The last word also matches as the beginning of longer
  words, but never through FTS5's own prefix query (``mode*``), which merges the whole posting
  list of every word that begins so before it returns one row: 70 ms for a word in every
  message, 7 s for one letter. Instead the index's own vocabulary (fts5vocab, one seek per word)
  names the words that begin so, and an OR of them, which FTS5 walks lazily, finds the newest.
- A prefix so broad that more than ``PREFIX_WORDS_MAX`` words begin with it (one or two letters,
  one common Chinese character) is matched in the newest ``RECENT_MESSAGES`` messages instead:
  so many words begin with it that the newest messages fill the page.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Search snippets mark each matched term as HIGHLIGHT_START + term + HIGHLIGHT_END. Control
# characters cannot collide with markup or brackets in the user's own text; see split_snippet().
HIGHLIGHT_START = "\x02"
HIGHLIGHT_END = "\x03"

# At most this many words beginning with the word being typed are looked up, OR-ed together
# (about 0.1 ms each: the vocabulary seek, and the OR's start in every index segment).
PREFIX_WORDS_MAX = 64
# A broader prefix is matched in this many of the newest messages (about 15 ms of LIKE).
RECENT_MESSAGES = 20_000

# Scripts written without spaces between words: Han, Hiragana, Katakana, Thai, Lao, Khmer,
# Myanmar. migrations.m008 writes the same ranges as a GLOB class (tests check they agree).
UNSPACED_SCRIPT = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff]"
)

# The user's words and "quoted phrases" (as sqlite-utils' quote_fts splits them).
_PHRASES = re.compile(r'\s+|(".*?")')
# A word as unicode61 sees it: a run of letters and digits.
_WORD = re.compile(r"[^\W_]+")


@dataclass
class SearchHit:
    conversation_id: int
    message_id: int | None  # None for a match in the conversation's title
    title: str
    role: str  # "user", "assistant", or "title"
    snippet: str  # matched terms wrapped in HIGHLIGHT_START / HIGHLIGHT_END


def split_snippet(snippet: str) -> list[tuple[str, bool]]:
    """Split a SearchHit.snippet into (text, highlighted) runs for display."""
    runs: list[tuple[str, bool]] = []
    for i, part in enumerate(snippet.split(HIGHLIGHT_START)):
        if i == 0:
            if part:
                runs.append((part, False))
            continue
        marked, _, rest = part.partition(HIGHLIGHT_END)
        if marked:
            runs.append((marked, True))
        if rest:
            runs.append((rest, False))
    return runs


def format_snippet(snippet: str, start: str = "[", end: str = "]") -> str:
    """A SearchHit.snippet with its highlight markers replaced, e.g. for a terminal or HTML."""
    return snippet.replace(HIGHLIGHT_START, start).replace(HIGHLIGHT_END, end)


def phrases(query: str) -> list[str]:
    """The words and "quoted phrases" of ``query``, quotes removed; NULs are spaces (FTS5
    reads a query only up to a NUL). An unbalanced quote is closed at the end."""
    query = query.replace("\x00", " ").strip()
    if query.count('"') % 2:
        query += '"'
    bits = [b for b in _PHRASES.split(query) if b and b != '""']
    return [b[1:-1] if b.startswith('"') else b for b in bits]


def fold(text: str) -> str:
    """``text`` about as unicode61 with remove_diacritics indexes it: lower case, accents
    dropped ("Café" is "cafe"), other characters as they were (Hangul stays composed)."""
    text = text.lower()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", bare)


def _quoted(text: str) -> str:
    """``text`` as an FTS5 string: one phrase, matched literally."""
    return '"' + text.replace('"', '""') + '"'


def _window(text: str, at: int, width: int = 60) -> str:
    """About ``width`` characters of ``text`` around position ``at``."""
    start = max(0, at - width // 2)
    piece = " ".join(text[start : start + width].split())
    return ("…" if start > 0 else "") + piece + ("…" if start + width < len(text) else "")


def _highlight(text: str, pattern: re.Pattern[str]) -> str:
    return pattern.sub(lambda m: f"{HIGHLIGHT_START}{m.group(0)}{HIGHLIGHT_END}", text)


def _substrings(words: Iterable[str]) -> re.Pattern[str]:
    """Any of ``words``, case-insensitively, longest first."""
    ordered = sorted(words, key=len, reverse=True)
    return re.compile("|".join(re.escape(w) for w in ordered), re.IGNORECASE)


def _like_patterns(words: Iterable[str]) -> list[str]:
    """``%word%`` for LIKE ... ESCAPE '\\', with the user's own % and _ taken literally."""
    return [
        "%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for w in words
    ]


class MessageSearch:
    """Search over one Store connection (the Store translates its sqlite3 errors)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        # The indexes' vocabularies, one row per (word, message, position), in word order: a
        # seek with LIMIT 1 names the next word without reading its posting list. temp: they
        # live and die with this connection and change nothing in the file.
        for index in ("messages_fts", "messages_trigram"):
            conn.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{index}_words "
                f"USING fts5vocab(main, {index}, instance)"
            )

    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Messages of every conversation matching all words of ``query``, newest first, after
        at most five conversations whose title matches.

        The user's text is always quoted, so FTS5 syntax such as AND, NEAR, * or a stray quote
        is searched for literally and never raises; a "quoted phrase" stays a phrase. The last
        word also matches as the beginning of longer words, so results appear while it is
        typed. A query with Chinese, Japanese, Thai... finds each word as a substring.
        """
        words = phrases(query)
        if not words or limit <= 0:
            return []
        if UNSPACED_SCRIPT.search(query):
            hits = self._substring_hits(words, limit)
        else:
            hits = self._word_hits(words, limit)
        # Title matches first, a few at most: one letter typed must not bury the messages.
        return (self._title_hits(words, min(5, limit)) + hits)[:limit]

    # -- the word index -----------------------------------------------------------------------

    def _word_hits(self, words: list[str], limit: int) -> list[SearchHit]:
        """Messages with every word, the last one also as the beginning of a longer word."""
        head = [_quoted(w) for w in words[:-1]]
        tokens = _WORD.findall(words[-1].lower())
        if not tokens:  # nothing that begins a word ("🦀", "*"): the phrase as it is
            return self._fts(" AND ".join([*head, _quoted(words[-1])]), limit)
        *before, last = tokens
        # The index folds accents away where it knows how ("é" is "e"); look up both forms.
        forms = sorted({last, fold(last)})
        found = [self._words_beginning("messages_fts", form) for form in forms]
        if None in found:
            # So many words begin so that the newest messages hold the newest matches; if they
            # do not after all, FTS5's own prefix query finds them (slower, but complete).
            hits = self._recent_word_hits(head, before, forms, limit)
            if len(hits) < limit:
                hits = self._fts(" AND ".join([*head, _quoted(" ".join(tokens)) + "*"]), limit)
            return hits
        longer = sorted({w for words_found in found for w in words_found or ()})
        if not longer:
            return []
        # Each a whole phrase, so that "node.j" still needs "node" right before "js".
        either = " OR ".join(_quoted(" ".join([*before, w])) for w in longer)
        return self._fts(" AND ".join([*head, f"({either})"]), limit)

    def _fts(self, match: str, limit: int) -> list[SearchHit]:
        """The newest ``limit`` messages matching an FTS5 query, with their snippets."""
        try:
            rows = self.conn.execute(
                "SELECT m.conversation_id, m.id, c.title, m.role, f.snip FROM ("
                "  SELECT rowid AS id, snippet(messages_fts, 0, ?, ?, '…', 16) AS snip"
                "  FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid DESC LIMIT ?"
                ") f "
                "JOIN messages m ON m.id = f.id "
                "JOIN conversations c ON c.id = m.conversation_id "
                "ORDER BY f.id DESC",
                (HIGHLIGHT_START, HIGHLIGHT_END, match, int(limit)),
            )
            return [SearchHit(*row) for row in rows]
        except sqlite3.OperationalError as exc:
            # Quoting makes this unreachable; an odd query finds nothing rather than showing
            # the user an FTS5 syntax error.
            if str(exc).startswith(("fts5:", "unterminated string")):
                log.warning("A search (%d characters) failed: %s", len(match), exc)
                return []
            raise

    def _words_beginning(self, index: str, prefix: str) -> list[str] | None:
        """The indexed words that begin with ``prefix`` (folded as the index folds), or None
        when there are more than PREFIX_WORDS_MAX of them."""
        found: list[str] = []
        low = prefix
        while True:
            row = self.conn.execute(
                f"SELECT term FROM temp.{index}_words WHERE term >= ? LIMIT 1", (low,)
            ).fetchone()
            if row is None or not row[0].startswith(prefix):
                return found
            if len(found) == PREFIX_WORDS_MAX:
                return None
            found.append(row[0])
            low = row[0] + "\x01"  # the next word: no indexed word holds a control character

    def _recent_word_hits(
        self, head: list[str], before: list[str], forms: list[str], limit: int
    ) -> list[SearchHit]:
        """The newest messages among the newest RECENT_MESSAGES with the phrases of ``head``,
        then the words ``before`` and a word beginning with one of ``forms``."""
        newest = self.conn.execute("SELECT max(id) FROM messages").fetchone()[0]
        if newest is None:
            return []
        where, args = ["m.id > :floor"], {"floor": newest - RECENT_MESSAGES}
        if head:
            where.append(
                "m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH :head "
                "AND rowid > :floor)"
            )
            args["head"] = " AND ".join(head)
        if all(form.isascii() for form in forms):
            # A first cut: LIKE folds ASCII case only, so text beyond ASCII (where "ç" is a
            # "c" to the index) goes to the exact test below.
            where.append(
                "(m.content LIKE :like ESCAPE '\\' "
                "OR length(CAST(m.content AS BLOB)) > length(m.content))"
            )
            args["like"] = _like_patterns([forms[0]])[0]
        rows = self.conn.execute(
            f"{_MESSAGE_ROWS} WHERE {' AND '.join(where)} ORDER BY m.id DESC", args
        )
        # Word boundaries as unicode61 draws them: letters and digits make words.
        phrase = "".join(re.escape(w) + r"[\W_]+" for w in before)
        begins = re.compile(
            r"(?<![^\W_])" + phrase + "(?:" + "|".join(re.escape(f) for f in forms) + ")"
        )

        def where_found(content: str) -> int | None:
            match = begins.search(content.lower()) or begins.search(fold(content))
            return None if match is None else match.start()

        shown = re.compile(begins.pattern + r"[^\W_]*", re.IGNORECASE)
        return _collect(rows, where_found, shown, limit)

    # -- the trigram index --------------------------------------------------------------------

    def _substring_hits(self, words: list[str], limit: int) -> list[SearchHit]:
        """Messages holding every one of ``words`` as a substring, case-insensitively.

        unicode61 splits only at spaces and punctuation, so a Chinese or Japanese word inside a
        sentence is no token of its own. The trigram index finds any run of three characters or
        more (a phrase of its trigrams); a word of one or two characters is an OR of the indexed
        trigrams that begin with it (the index pads each message with two spaces, so a message
        that ends with the word has one too). A word that begins more than PREFIX_WORDS_MAX
        trigrams is common: it is checked in the messages the other words find, or, alone, by a
        scan of the newest messages first.
        """
        parts, common = [], []
        for word in words:
            if len(word) >= 3:
                parts.append(_quoted(word))
                continue
            trigrams = self._words_beginning("messages_trigram", word.lower())
            if trigrams is None:
                common.append(word.lower())
            elif not trigrams:
                return []
            else:
                parts.append("(" + " OR ".join(_quoted(t) for t in trigrams) + ")")
        if parts:
            # The index is the outer loop, in its rowid order: rows are read only as needed.
            rows = self.conn.execute(
                "SELECT m.conversation_id, m.id, c.title, m.role, m.content "
                "FROM messages_trigram t JOIN messages m ON m.id = t.rowid "
                "JOIN conversations c ON c.id = m.conversation_id "
                "WHERE messages_trigram MATCH ? ORDER BY t.rowid DESC",
                (" AND ".join(parts),),
            )
        else:
            caseless = [w for w in common if w.isascii() or w.lower() == w.upper()]  # for LIKE
            like = " AND ".join(["m.content LIKE ? ESCAPE '\\'"] * len(caseless)) or "1"
            rows = self.conn.execute(
                f"{_MESSAGE_ROWS} WHERE {like} ORDER BY m.id DESC", _like_patterns(caseless)
            )
        shown = _substrings(words)

        def where_found(content: str) -> int | None:
            if common:
                text = content.lower()
                if not all(w in text for w in common):
                    return None
            found = shown.search(content)
            return found.start() if found else 0

        return _collect(rows, where_found, shown, limit)

    # -- titles -------------------------------------------------------------------------------

    def _title_hits(self, words: list[str], limit: int) -> list[SearchHit]:
        """Conversations whose title holds every one of ``words`` (titles are few and short:
        a LIKE scan, with the words as bound parameters)."""
        like = " AND ".join(["title LIKE ? ESCAPE '\\'"] * len(words))
        rows = self.conn.execute(
            f"SELECT id, title FROM conversations WHERE {like} ORDER BY updated_at DESC LIMIT ?",
            (*_like_patterns(words), int(limit)),
        ).fetchall()
        shown = _substrings(words)
        return [
            SearchHit(conversation_id, None, title, "title", _highlight(title, shown))
            for conversation_id, title in rows
        ]


# A message with its conversation's title, as _collect takes it.
_MESSAGE_ROWS = (
    "SELECT m.conversation_id, m.id, c.title, m.role, m.content FROM messages m "
    "JOIN conversations c ON c.id = m.conversation_id"
)


def _collect(
    rows: sqlite3.Cursor,
    where_found: Callable[[str], int | None],
    shown: re.Pattern[str],
    limit: int,
) -> list[SearchHit]:
    """The first ``limit`` of ``rows`` (_MESSAGE_ROWS, newest first) in which ``where_found``
    finds a match, with a snippet around it; reads no more rows than that."""
    hits: list[SearchHit] = []
    for cid, mid, title, role, content in rows:
        at = where_found(content)
        if at is None:
            continue
        hits.append(SearchHit(cid, mid, title, role, _highlight(_window(content, at), shown)))
        if len(hits) == limit:
            break
    rows.close()
    return hits
