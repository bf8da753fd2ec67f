"""The transcript: messages rendered as Markdown, code blocks highlighted, replies streamed in.

Over 400 lines: the transcript is one document, and its streaming reply (live Markdown, the
thought header, versions, code links) edits it in place. Code colours are code_highlighter.py,
block boundaries markdown_stream.py.
"""

from __future__ import annotations

import os
import sys
import time

from PySide6.QtCore import QEvent, QUrl, Signal, Slot
from PySide6.QtGui import (
    QContextMenuEvent,
    QDesktopServices,
    QFont,
    QFontDatabase,
    QGuiApplication,
    QPalette,
    QTextBlock,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextDocumentFragment,
)
from PySide6.QtWidgets import QMenu, QTextBrowser, QWidget

from assistant.chat.markdown_stream import displayable, stable_end
from assistant.conversations.export import describe_message
from assistant.conversations.storage import Message
from assistant.ui.code_highlighter import CodeHighlighter, code_language, is_code

_FEATURES = QTextDocument.MarkdownFeature
_MARKDOWN = _FEATURES(_FEATURES.MarkdownDialectGitHub.value | _FEATURES.MarkdownNoHTML.value)


def insert_markdown(cursor: QTextCursor, text: str) -> None:
    """Insert Markdown at the cursor, which must stand in an empty block. (QTextCursor's own
    insertMarkdown merges the first block into that one and drops its format: a reply that
    begins with a code block or a heading would lose it.)"""
    source = QTextDocument()
    source.setMarkdown(text, _MARKDOWN)
    first = cursor.block()
    cursor.insertFragment(QTextDocumentFragment(source))
    QTextCursor(first).setBlockFormat(source.begin().blockFormat())


class ChatView(QTextBrowser):
    """Renders what the chat session says; streaming text is appended with a QTextCursor.

    Signals:
        edit_requested(int): the user clicked "Edit" on one of their messages.
        version_requested(int, int): show another version of this message's turn (-1: the
            one before, +1: the one after).
    """

    edit_requested = Signal(int)
    version_requested = Signal(int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("chatView")
        self.setAccessibleName("Conversation")
        self.setOpenLinks(False)
        self.setReadOnly(True)
        self.setPlaceholderText("Type a message below to start chatting.")
        self.anchorClicked.connect(self._on_anchor)
        self.document().setDocumentMargin(12)
        self._highlighter = CodeHighlighter(self.document(), self.palette())
        self._messages: list[Message] = []  # what is shown, to re-render on a theme change
        self._contents: dict[int, str] = {}  # message id -> text (Copy)
        self._code: list[str] = []  # code block texts (Copy code)
        self._reply: Message | None = None  # the assistant Message streaming now
        self._reply_start: int | None = None  # where its text begins in the document
        self.appends = 0  # streaming updates received (the session batches them)
        self._expanded: set[int] = set()  # replies whose thinking is unfolded
        self._thinking_since: float | None = None  # the streaming reply is thinking, since
        self._answering = False  # the streaming reply's answer has begun
        # Live Markdown: the answer so far, how much of it is finished blocks rendered once,
        # and where the block being written (re-rendered each batch) begins in the document.
        self._answer = ""
        self._rendered = 0
        self._tail_start: int | None = None
        self._code_mark = 0

    # --- rendering -------------------------------------------------------------------------

    @Slot(object, list)
    def show_conversation(self, _conversation_id: int | None, messages: list[Message]) -> None:
        """Render a whole conversation (on opening it; never per token)."""
        self.clear()
        self._messages = []
        self._contents.clear()
        self._code.clear()
        self._reply = None
        self._reply_start = None
        self._thinking_since = None
        self._answering = False
        self._reset_live()
        self._highlighter.hold_from(None)  # a reply that streamed here is not on screen now
        for message in messages:
            self.add_message(message)
        # A reply still streaming (finish_reason None) keeps receiving text.
        if messages and messages[-1].role == "assistant" and messages[-1].finish_reason is None:
            self._reply = messages[-1]
        self._scroll_to_end()

    @Slot(object)
    def add_message(self, message: Message) -> None:
        self._messages.append(message)
        self._contents[message.id] = message.content
        cursor = self._end_cursor()
        self._insert_header(cursor, message)
        start = cursor.position()
        if message.role == "assistant" and message.finish_reason is None:
            self._code_mark = len(self._code)  # the code blocks listed before this reply
            cursor.insertText(message.content, self._plain_format())
            self._reply_start = start
        else:
            self._insert_body(cursor, message)
        self._scroll_to_end()

    @Slot(object)
    def begin_reply(self, message: Message) -> None:
        self._reply = message
        self.add_message(message)

    @Slot(str)
    def append_reasoning_text(self, text: str) -> None:
        """The streaming reply's thinking: shown as it comes, under "Thinking...", muted."""
        if self._reply_start is None or self._answering:
            return
        cursor = self._end_cursor()
        if self._thinking_since is None:
            self._thinking_since = time.monotonic()
            cursor.insertText("Thinking...", self._thought_label_format())
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
        self._append(text, self._muted_format())

    @Slot(str)
    def append_reply_text(self, text: str) -> None:
        """Streamed text, rendered as Markdown as it comes: finished blocks once, and only the
        block being written again each batch; never the whole reply or the transcript. The
        first piece of an answer folds the thinking above it."""
        if self._reply_start is None:
            return
        if not self._answering:
            self._answering = True
            self._highlighter.hold_from(self._reply_start)  # its code, coloured as it settles
            cursor = self._end_cursor()
            if self._thinking_since is not None:
                seconds = time.monotonic() - self._thinking_since
                cursor.setPosition(self._reply_start, QTextCursor.MoveMode.KeepAnchor)
                cursor.removeSelectedText()
                self._insert_thought_header(cursor, None, seconds)
                cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
            self._tail_start = cursor.position()
        self.appends += 1
        bar = self.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        self._answer += text
        assert self._tail_start is not None
        cursor = self._end_cursor()
        cursor.setPosition(self._tail_start, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        finished = stable_end(self._answer)
        if finished > self._rendered:
            start = cursor.position()
            insert_markdown(cursor, self._answer[self._rendered : finished])
            self._decorate_code(start, cursor.position())  # finished: its label and Copy link
            self._highlighter.release(start, cursor.position())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
            self._rendered = finished
            self._tail_start = cursor.position()
        tail = self._answer[self._rendered :]
        if tail.strip():
            insert_markdown(cursor, displayable(tail))
        if at_bottom:
            bar.setValue(bar.maximum())

    def _reset_live(self) -> None:
        self._answer = ""
        self._rendered = 0
        self._tail_start = None

    def _append(self, text: str, fmt: QTextCharFormat) -> None:
        self.appends += 1
        bar = self.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        cursor = self._end_cursor()
        cursor.insertText(text, fmt)
        if at_bottom:
            bar.setValue(bar.maximum())

    @Slot(object)
    def finish_reply(self, message: Message) -> None:
        """The reply is stored: render its last block for good, and its footer. What streamed
        is kept as it was rendered; only when the stored text differs (a stop string cut, the
        engine's final text) is the reply rendered again, whole."""
        if self._reply_start is None or self._reply is None or self._reply.id != message.id:
            return
        self._contents[message.id] = message.content
        self._messages = [message if m.id == message.id else m for m in self._messages]
        cursor = self._end_cursor()
        # (A reply with thinking is rendered again: its folded header becomes a link.)
        live = self._tail_start is not None and message.content == self._answer
        if live and not message.reasoning:
            assert self._tail_start is not None
            cursor.setPosition(self._tail_start, QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            start = cursor.position()
            insert_markdown(cursor, self._answer[self._rendered :])
            self._decorate_code(start, cursor.position())
            self._highlighter.release(start, cursor.position(), last=True)
            cursor.movePosition(QTextCursor.MoveOperation.End)
            self._insert_footer(cursor, message)
        else:
            del self._code[self._code_mark :]  # this reply's code blocks are listed again
            cursor.setPosition(self._reply_start, QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            start = cursor.position()
            self._insert_body(cursor, message)
            self._highlighter.release(start, cursor.position(), last=True)
        self._reply = None
        self._reply_start = None
        self._thinking_since = None
        self._answering = False
        self._reset_live()
        self._scroll_to_end()

    def _end_cursor(self) -> QTextCursor:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor

    def _scroll_to_end(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _plain_format(self) -> QTextCharFormat:
        return QTextCharFormat()

    def _muted_format(self) -> QTextCharFormat:
        f = QTextCharFormat()
        f.setForeground(
            self.palette().color(QPalette.ColorGroup.Active, QPalette.ColorRole.PlaceholderText)
        )
        f.setFontPointSize(max(7.0, self.font().pointSizeF() * 0.85))
        return f

    def _link_format(self, href: str) -> QTextCharFormat:
        f = self._muted_format()
        f.setAnchor(True)
        f.setAnchorHref(href)
        f.setForeground(self.palette().color(QPalette.ColorRole.Link))
        return f

    def _insert_header(self, cursor: QTextCursor, message: Message) -> None:
        block = QTextBlockFormat()
        block.setTopMargin(14 if not self.document().isEmpty() else 0)
        block.setBottomMargin(2)
        if self.document().isEmpty():
            cursor.setBlockFormat(block)
        else:
            cursor.insertBlock(block, QTextCharFormat())
        name = QTextCharFormat()
        name.setFontWeight(QFont.Weight.Bold)
        cursor.insertText("You" if message.role == "user" else "Assistant", name)
        cursor.insertText("   ", QTextCharFormat())
        if message.role == "user":
            cursor.insertText("Edit", self._link_format(f"edit:{message.id}"))
        else:
            cursor.insertText("Copy", self._link_format(f"copymsg:{message.id}"))
        if message.versions > 1:
            cursor.insertText("   ", QTextCharFormat())
            if message.version > 1:
                cursor.insertText("‹", self._link_format(f"older:{message.id}"))
            cursor.insertText(f" {message.version}/{message.versions} ", self._muted_format())
            if message.version < message.versions:
                cursor.insertText("›", self._link_format(f"newer:{message.id}"))
        cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())

    def _insert_body(self, cursor: QTextCursor, message: Message) -> None:
        start = cursor.position()
        if message.role == "user":
            cursor.insertText(message.content, self._plain_format())
        else:
            if message.reasoning:
                seconds = message.reasoning_ms / 1000 if message.reasoning_ms else None
                self._insert_thought_header(cursor, message.id, seconds)
                if message.id in self._expanded:
                    cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
                    cursor.insertText(message.reasoning, self._muted_format())
                cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
                start = cursor.position()
            # Model output is text, never markup for us: HTML in it is shown as written.
            insert_markdown(cursor, message.content or "")
            self._decorate_code(start, cursor.position())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            self._insert_footer(cursor, message)

    def _insert_footer(self, cursor: QTextCursor, message: Message) -> None:
        footer = _footer(message)
        if footer:
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
            cursor.insertText(footer, self._muted_format())
        calls = message.tool_call_list if message.role == "assistant" else []
        for call in calls if message.finish_reason is not None else []:
            # Each tool call, folded to one line: the whole result is in its tooltip.
            result = " ".join(str(call.get("result", "")).split())
            status = {"ran": "ran", "denied": "declined", "failed": "failed"}.get(
                str(call.get("status")), str(call.get("status", ""))
            )
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
            fmt = self._muted_format()
            fmt.setToolTip(f"{call.get('tool')} {call.get('arguments', '')}\n\n"
                           f"{str(call.get('result', ''))[:2000]}")  # fmt: skip
            cursor.insertText(
                f"⚙ {call.get('tool')} {str(call.get('arguments', ''))[:80]}: {status}"
                + (f" ▸ {result[:120]}{'…' if len(result) > 120 else ''}" if result else ""),
                fmt,
            )
        sources = message.source_list if message.role == "assistant" else []
        if sources and message.finish_reason is not None:
            # "Sources: [1] notes.md, lines 3-10  [2] manual.pdf, page 4", each opening its file.
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
            cursor.insertText("Sources:", self._muted_format())
            for number, source in enumerate(sources, 1):
                path = str(source.get("path", ""))
                name = path.replace("\\", "/").rsplit("/", 1)[-1]
                where = f", {source['where']}" if source.get("where") else ""
                cursor.insertText("  ", self._muted_format())
                # Its own scheme: a file: link in a model's text is never opened (a document
                # or a tool could have put one there); this one opens the listed source only.
                link = self._link_format(f"source:{message.id}-{number - 1}")
                link.setToolTip(f"{path}{where}\n\n{str(source.get('text', ''))[:400]}")
                cursor.insertText(f"[{number}] {name}{where}", link)

    def _thought_label_format(self) -> QTextCharFormat:
        f = self._muted_format()
        f.setFontItalic(True)
        return f

    def _insert_thought_header(
        self, cursor: QTextCursor, message_id: int | None, seconds: float | None
    ) -> None:
        """ "▸ Thought for 4 s": a link that unfolds the thinking (folded, it is one line)."""
        took = f"Thought for {seconds:.0f} s" if seconds is not None else "Thought"
        if seconds is not None and seconds < 10:
            took = f"Thought for {seconds:.1f} s"
        if message_id is None:  # still streaming: it unfolds once the reply is stored
            cursor.insertText(f"▸ {took}", self._thought_label_format())
            return
        mark = "▾" if message_id in self._expanded else "▸"
        fmt = self._link_format(f"think:{message_id}")
        fmt.setFontItalic(True)
        cursor.insertText(f"{mark} {took}", fmt)

    def toggle_thought(self, message_id: int) -> None:
        """Unfold a reply's thinking, or fold it again (not while a reply streams)."""
        if self._reply is not None:
            return
        self._expanded ^= {message_id}
        bar = self.verticalScrollBar()
        where = bar.value()
        self.show_conversation(None, list(self._messages))
        bar.setValue(min(where, bar.maximum()))

    def _decorate_code(self, start: int, end: int) -> None:
        """Give each code block a background, a fixed font and a "Copy code" link above it."""
        doc = self.document()
        groups: list[list[QTextBlock]] = []
        block = doc.findBlock(start)
        while block.isValid() and block.position() < end:
            if is_code(block):
                if groups and groups[-1][-1].next() == block:
                    groups[-1].append(block)
                else:
                    groups.append([block])
            block = block.next()
        background = self.palette().color(QPalette.ColorRole.AlternateBase)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        base = len(self._code)
        self._code.extend("\n".join(b.text() for b in group) for group in groups)
        # Last group first, so inserting links keeps the earlier positions valid.
        for offset, group in reversed(list(enumerate(groups))):
            index = base + offset
            language = code_language(group[0])  # read before the blocks move
            first = group[0].position()
            last = group[-1].position() + group[-1].length() - 1
            cursor = QTextCursor(doc)
            cursor.setPosition(first)
            cursor.setPosition(last, QTextCursor.MoveMode.KeepAnchor)
            code_block = QTextBlockFormat()
            code_block.setBackground(background)
            cursor.mergeBlockFormat(code_block)
            font = QTextCharFormat()
            font.setFontFamilies([mono.family()])
            cursor.mergeCharFormat(font)
            cursor.setPosition(first)
            code_format = group[0].blockFormat()
            cursor.insertBlock(code_format)
            cursor.movePosition(QTextCursor.MoveOperation.PreviousBlock)
            plain = QTextBlockFormat()
            plain.setTopMargin(4)
            cursor.setBlockFormat(plain)
            if language:
                cursor.insertText(f"{language}   ", self._muted_format())
            cursor.insertText("Copy code", self._link_format(f"copy:{index}"))

    # --- links, copying and themes ---------------------------------------------------------

    @Slot(QUrl)
    def _on_anchor(self, url: QUrl) -> None:
        scheme, rest = url.scheme(), url.path()
        if scheme == "copy" and rest.isdigit() and int(rest) < len(self._code):
            QGuiApplication.clipboard().setText(self._code[int(rest)])
        elif scheme == "copymsg" and rest.isdigit():
            QGuiApplication.clipboard().setText(self._contents.get(int(rest), ""))
        elif scheme in ("older", "newer") and rest.isdigit():
            self.version_requested.emit(int(rest), -1 if scheme == "older" else 1)
        elif scheme == "think" and rest.isdigit():
            self.toggle_thought(int(rest))
        elif scheme == "edit" and rest.isdigit():
            self.edit_requested.emit(int(rest))
        elif scheme in ("http", "https", "mailto"):
            open_outside(url)
        elif scheme == "source":  # a reply's source: the person's own file, in its own program
            self._open_source(rest)

    def _open_source(self, ref: str) -> None:
        message_id, _, index = ref.partition("-")
        message = next((m for m in self._messages if str(m.id) == message_id), None)
        sources = message.source_list if message is not None else []
        if index.isdigit() and int(index) < len(sources):
            path = str(sources[int(index)].get("path", ""))
            if path:
                open_outside(QUrl.fromLocalFile(path))

    def code_blocks(self) -> list[str]:
        """The code blocks shown, in the order their Copy links refer to them."""
        return list(self._code)

    def copy_code(self, index: int) -> None:
        self._on_anchor(QUrl(f"copy:{index}"))

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 (Qt override)
        menu: QMenu = self.createStandardContextMenu(event.pos())
        block = self.cursorForPosition(event.pos()).block()
        if is_code(block):
            first = block
            while first.previous().isValid() and is_code(first.previous()):
                first = first.previous()
            lines = []
            b = first
            while b.isValid() and is_code(b):
                lines.append(b.text())
                b = b.next()
            text = "\n".join(lines)
            action = menu.addAction("Copy code block")
            action.triggered.connect(lambda: QGuiApplication.clipboard().setText(text))
        menu.exec(event.globalPos())

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange and hasattr(self, "_highlighter"):
            # Light/dark switched: colours were baked into the document, so render again.
            self._highlighter.set_palette(self.palette())
            if self._reply is None:
                self.show_conversation(None, list(self._messages))


def _footer(message: Message) -> str:
    if message.role != "assistant" or message.finish_reason is None:
        return ""  # still streaming: the footer comes when it ends
    return describe_message(message)


def open_outside(url: QUrl) -> None:
    """Open a link with the desktop's own program (xdg-open, the browser). In the installed app
    PyInstaller points LD_LIBRARY_PATH at its own libraries, which that program must not load:
    it gets the person's for this one start. (The app and its engine keep PyInstaller's.)"""
    bundled = os.environ.get("LD_LIBRARY_PATH")
    if not getattr(sys, "frozen", False) or bundled is None:
        QDesktopServices.openUrl(url)
        return
    original = os.environ.get("LD_LIBRARY_PATH_ORIG")
    try:
        if original is None:
            del os.environ["LD_LIBRARY_PATH"]
        else:
            os.environ["LD_LIBRARY_PATH"] = original
        QDesktopServices.openUrl(url)
    finally:
        os.environ["LD_LIBRARY_PATH"] = bundled
