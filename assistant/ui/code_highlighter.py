"""Colours for the code blocks of the transcript, from Pygments (hundreds of languages), in a
style that follows the light or dark palette.

Qt highlights one text block (one line of code) at a time; each line is lexed on its own, which
loses the state of a string or comment that spans lines, and costs microseconds a line.
"""

from __future__ import annotations

import functools

from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.styles import get_style_by_name
from pygments.token import _TokenType
from pygments.util import ClassNotFound
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

LIGHT_STYLE = "default"
DARK_STYLE = "monokai"


def is_code(block: QTextBlock) -> bool:
    return block.blockFormat().hasProperty(QTextFormat.Property.BlockCodeLanguage)


def code_language(block: QTextBlock) -> str:
    value = block.blockFormat().property(QTextFormat.Property.BlockCodeLanguage)
    return str(value or "").strip().lower()


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


@functools.lru_cache(maxsize=64)
def _lexer(language: str) -> Lexer | None:
    if not language:
        return None
    try:
        return get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


class CodeHighlighter(QSyntaxHighlighter):
    """Pygments colours for fenced code blocks; other blocks are left alone."""

    def __init__(self, document: QTextDocument, palette: QPalette):
        super().__init__(document)
        self._formats: dict[_TokenType, QTextCharFormat] = {}
        self.set_palette(palette)

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
        lexer = _lexer(code_language(block))
        if lexer is None:
            return
        position = 0
        for token, value in lexer.get_tokens(text):
            if value:
                self.setFormat(position, len(value), self._format(token))
                position += len(value)
