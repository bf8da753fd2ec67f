"""Colours for the code blocks of the transcript, from Pygments (hundreds of languages), in a
style that follows the light or dark palette.

Qt highlights one text block (one line of code) at a time; each line is lexed on its own, which
loses the state of a string or comment that spans lines. Pygments takes a fraction of a
millisecond a line, so a streaming reply's code is coloured in the background: its lines are
held back (``hold_from``) and released a few at a time between events (``release``), never
more than HIGHLIGHT_BUDGET_S of work at once.
"""

from __future__ import annotations

import logging
import time

from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.styles import get_style_by_name
from pygments.token import _TokenType
from pygments.util import ClassNotFound
from PySide6.QtCore import QTimer, Slot
from PySide6.QtGui import (
    QColor,
    QFont,
    QPalette,
    QSyntaxHighlighter,
    QTextBlock,
    QTextCharFormat,
    QTextDocument,
    QTextFormat,
)

from assistant.ui.workers import run_task

HIGHLIGHT_BUDGET_S = 0.008  # of highlighting per event-loop turn while a reply streams
log = logging.getLogger(__name__)

LIGHT_STYLE = "default"
DARK_STYLE = "monokai"


def is_code(block: QTextBlock) -> bool:
    return block.blockFormat().hasProperty(QTextFormat.Property.BlockCodeLanguage)


def code_language(block: QTextBlock) -> str:
    value = block.blockFormat().property(QTextFormat.Property.BlockCodeLanguage)
    return str(value or "").strip().lower()


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


# Loaded on the task pool as soon as a view exists: the first use of a lexer imports its module
# (python's 65 ms, most 5-30 ms), which on the GUI thread, mid-reply, would be a stall.
COMMON_LANGUAGES = (
    "python", "javascript", "typescript", "bash", "json", "c", "cpp", "rust", "go", "java",
    "html", "sql", "yaml",
)  # fmt: skip
_lexers: dict[str, Lexer | None] = {}  # loaded (None: no such language)
_loading: set[str] = set()


def _load_lexers(languages: tuple[str, ...]) -> dict[str, Lexer | None]:
    """On the pool: the lexers of these languages (None for a name Pygments does not know)."""
    found: dict[str, Lexer | None] = {}
    for language in languages:
        try:
            found[language] = get_lexer_by_name(language, stripnl=False, ensurenl=False)
        except ClassNotFound:
            found[language] = None
    return found


class CodeHighlighter(QSyntaxHighlighter):
    """Pygments colours for fenced code blocks; other blocks are left alone."""

    def __init__(self, document: QTextDocument, palette: QPalette):
        super().__init__(document)
        self._formats: dict[_TokenType, QTextCharFormat] = {}
        # Blocks at or after this position are coloured only once released (None: all are).
        self._hold_from: int | None = None
        self._released: set[int] = set()  # block numbers
        self._queue: list[int] = []
        self._timer = QTimer(self)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._release_some)
        self.set_palette(palette)
        self._load((*COMMON_LANGUAGES,))

    def _load(self, languages: tuple[str, ...]) -> None:
        wanted = tuple(x for x in languages if x not in _lexers and x not in _loading)
        if wanted:
            _loading.update(wanted)
            run_task(
                _load_lexers,
                wanted,
                on_done=self._loaded,
                on_error=lambda exc: self._not_loaded(wanted, exc),
            )

    def _loaded(self, found: dict[str, Lexer | None]) -> None:
        _lexers.update(found)
        _loading.difference_update(found)
        document = self.document()
        if document is None:
            return
        # The lines waiting for these lexers, coloured in the background too.
        block = document.begin()
        while block.isValid():
            if is_code(block) and code_language(block) in found and found[code_language(block)]:
                self._queue.append(block.blockNumber())
            block = block.next()
        if self._queue:
            self._timer.start()

    def _not_loaded(self, languages: tuple[str, ...], exc: BaseException) -> None:
        log.warning("Could not load a code lexer: %s", exc)
        _loading.difference_update(languages)  # asked for again when next shown

    def hold_from(self, position: int | None) -> None:
        """Colour nothing at or after ``position`` until it is released (a reply streams);
        None: hold nothing (another conversation is shown)."""
        self._hold_from = position
        self._released.clear()
        self._queue.clear()

    def release(self, start: int, end: int, *, last: bool = False) -> None:
        """Colour the code blocks between these positions, a few at a time from now on;
        ``last``: nothing more is held after these (the reply ended)."""
        document = self.document()
        if document is None or self._hold_from is None:
            return
        block = document.findBlock(start)
        while block.isValid() and block.position() < end:
            if is_code(block):
                self._queue.append(block.blockNumber())
            block = block.next()
        if last:
            self._queue.append(-1)  # the end of the hold
        self._timer.start()

    @property
    def pending(self) -> int:
        """Lines still waiting for their colours."""
        return len(self._queue)

    @Slot()
    def _release_some(self) -> None:
        document = self.document()
        deadline = time.perf_counter() + HIGHLIGHT_BUDGET_S
        while self._queue and time.perf_counter() < deadline:
            number = self._queue.pop(0)
            if number < 0:
                self._hold_from = None
                self._released.clear()
                continue
            if self._hold_from is not None:
                self._released.add(number)
            if document is not None:
                self.rehighlightBlock(document.findBlockByNumber(number))
        if not self._queue:
            self._timer.stop()

    def set_palette(self, palette: QPalette) -> None:
        self.style_name = DARK_STYLE if is_dark(palette) else LIGHT_STYLE
        self._style = get_style_by_name(self.style_name)
        self._formats.clear()
        self.rehighlight()

    def format_for(self, token: _TokenType) -> QTextCharFormat:
        """How a token of this kind is drawn (pygments.token.Keyword, say)."""
        return self._format(token)

    def _format(self, token: _TokenType) -> QTextCharFormat:
        fmt = self._formats.get(token)
        if fmt is None:
            style = self._style.style_for_token(token)
            fmt = QTextCharFormat()
            if style["color"]:
                fmt.setForeground(QColor(f"#{style['color']}"))
            if style["bold"]:
                fmt.setFontWeight(QFont.Weight.Bold)
            if style["italic"]:
                fmt.setFontItalic(True)
            self._formats[token] = fmt
        return fmt

    def highlightBlock(self, text: str) -> None:  # noqa: N802 (Qt override)
        block = self.currentBlock()
        if not is_code(block):
            return
        held = self._hold_from is not None and block.position() >= self._hold_from
        if held and block.blockNumber() not in self._released:
            return
        language = code_language(block)
        if not language:
            return
        if language not in _lexers:
            self._load((language,))  # coloured once it has loaded
            return
        lexer = _lexers[language]
        if lexer is None:
            return
        position = 0
        for token, value in lexer.get_tokens(text):
            if value:
                self.setFormat(position, len(value), self._format(token))
                position += len(value)
