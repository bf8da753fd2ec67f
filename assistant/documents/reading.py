"""The text of a file, with where each part came from (a PDF's page, a text file's line), or
the reason it is skipped, in words the person can act on.

Read: plain text and Markdown, source code and any other UTF-8 text, HTML, PDF (pypdf) and Word
(.docx, its XML read directly). Skipped with a reason: binary files, encrypted or damaged PDFs,
files too large, unreadable or gone.
"""

from __future__ import annotations

import codecs
import html.parser
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 200 << 20  # a bigger file is more likely a dump than a document
MAX_TEXT_CHARS = 20_000_000  # ~5,000 pages: past it the rest of the file is left out
MAX_PDF_PAGES = 5_000
SNIFF_BYTES = 8192

HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
DOCX_SUFFIXES = frozenset({".docx"})
PDF_SUFFIXES = frozenset({".pdf"})
# Known not to be text, so a folder walk skips them without opening them (and without listing
# each as "skipped": a photo in a notes folder is not a problem to report).
IGNORED_SUFFIXES = frozenset(
    ".png .jpg .jpeg .gif .bmp .webp .ico .svgz .tif .tiff .heic .mp3 .wav .flac .ogg .m4a "
    ".mp4 .mkv .mov .avi .webm .zip .gz .tgz .bz2 .xz .7z .rar .tar .zst .exe .dll .so .dylib "
    ".o .a .class .jar .pyc .whl .deb .rpm .dmg .iso .img .bin .gguf .safetensors .pt .onnx "
    ".sqlite .db .woff .woff2 .ttf .otf .psd .xcf .doc .xls .ppt".split()
)


class Unreadable(Exception):
    """The file is skipped; the message says why."""


@dataclass(frozen=True)
class Segment:
    """A piece of a file's text: a PDF page, or a text file from ``line`` on."""

    text: str
    page: int | None = None  # 1-based
    line: int | None = None  # 1-based line where ``text`` starts


def read(path: Path) -> list[Segment]:
    """The file's text in segments; Unreadable with the reason when it is skipped."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise Unreadable("the file is gone") from None
    except OSError as exc:
        raise Unreadable(f"cannot read it ({exc.strerror or exc})") from None
    if size > MAX_FILE_BYTES:
        raise Unreadable(f"too large ({size / 2**20:.0f} MB; documents up to "
                         f"{MAX_FILE_BYTES >> 20} MB are read)")  # fmt: skip
    suffix = path.suffix.lower()
    try:
        if suffix in PDF_SUFFIXES:
            return _read_pdf(path)
        if suffix in DOCX_SUFFIXES:
            return _read_docx(path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise Unreadable("the file is gone") from None
    except PermissionError:
        raise Unreadable("permission denied") from None
    except IsADirectoryError:
        raise Unreadable("it is a folder") from None
    except OSError as exc:
        raise Unreadable(f"cannot read it ({exc.strerror or exc})") from None
    text = _decode(data)
    if suffix in HTML_SUFFIXES:
        return [Segment(_html_text(text), line=1)]
    return [Segment(text[:MAX_TEXT_CHARS], line=1)]


def _decode(data: bytes) -> str:
    """Text as UTF-8 (with or without BOM), UTF-16 with a BOM, or Latin-1 for 8-bit text;
    Unreadable for binary data."""
    head = data[:SNIFF_BYTES]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    if b"\x00" in head:
        raise Unreadable("a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    if controls > len(head) // 100:
        raise Unreadable("a binary file, not text")
    return data.decode("latin-1")


class _HTMLText(html.parser.HTMLParser):
    BLOCKS = frozenset("p div br li tr h1 h2 h3 h4 h5 h6 section article pre table".split())

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in ("script", "style", "noscript", "template"):
            self._skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript", "template"):
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _html_text(source: str) -> str:
    parser = _HTMLText()
    parser.feed(source[:MAX_TEXT_CHARS])
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def _read_pdf(path: Path) -> list[Segment]:
    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings are about the file
    try:
        reader = pypdf.PdfReader(path, strict=False)
        if reader.is_encrypted:
            try:  # many "protected" PDFs have an empty user password (printing limits only)
                if not reader.decrypt(""):
                    raise Unreadable("the PDF is password-protected")
            except (NotImplementedError, FileNotDecryptedError):
                raise Unreadable("the PDF is password-protected") from None
            except DependencyError:
                raise Unreadable("the PDF is encrypted, and the library that decrypts it "
                                 "(cryptography) is not installed") from None  # fmt: skip
        pages = reader.pages
        count = len(pages)
    except Unreadable:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise Unreadable(f"the PDF is damaged or not a PDF ({_short(exc)})") from None
    segments, total = [], 0
    for number in range(min(count, MAX_PDF_PAGES)):
        try:
            text = pages[number].extract_text() or ""
        except Exception as exc:  # noqa: BLE001 - one bad page should not lose the rest
            log.info("%s: page %d unreadable: %s", path, number + 1, exc)
            continue
        if text.strip():
            segments.append(Segment(text, page=number + 1))
            total += len(text)
            if total > MAX_TEXT_CHARS:
                break
    if not segments:
        raise Unreadable("the PDF has no text (scanned pages need OCR, which is not done here)")
    return segments


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _read_docx(path: Path) -> list[Segment]:
    try:
        with zipfile.ZipFile(path) as z:
            xml = z.read("word/document.xml")
    except (zipfile.BadZipFile, KeyError):
        raise Unreadable("the Word file is damaged or not a .docx") from None
    except RuntimeError:  # zipfile's "encrypted, password required"
        raise Unreadable("the Word file is password-protected") from None
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise Unreadable(f"the Word file is damaged ({_short(exc)})") from None
    paragraphs = []
    for paragraph in root.iter(_W + "p"):
        parts = []
        for node in paragraph.iter():
            if node.tag == _W + "t" and node.text:
                parts.append(node.text)
            elif node.tag == _W + "tab":
                parts.append("\t")
            elif node.tag in (_W + "br", _W + "cr"):
                parts.append("\n")
        paragraphs.append("".join(parts))
    text = "\n".join(p for p in paragraphs if p.strip())
    if not text:
        raise Unreadable("the Word file has no text")
    return [Segment(text[:MAX_TEXT_CHARS])]


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:120]
