"""Reading files into text, and cutting it into passages: every kind read, every bad file
skipped with a reason the person can act on."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from assistant.documents import reading
from assistant.documents.chunks import chunk
from assistant.documents.reading import Segment, Unreadable
from tests.documents.samples import write_docx, write_pdf


def text_of(path: Path) -> str:
    return "".join(s.text for s in reading.read(path))


def test_text_markdown_and_code(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n\nSome *markdown*.\n", encoding="utf-8")
    (tmp_path / "b.py").write_text("def f():\n    return 1\n", encoding="utf-8")
    (tmp_path / "c").write_text("no suffix, still text", encoding="utf-8")
    assert "Some *markdown*." in text_of(tmp_path / "a.md")
    assert reading.read(tmp_path / "b.py") == [Segment("def f():\n    return 1\n", line=1)]
    assert text_of(tmp_path / "c") == "no suffix, still text"


def test_other_encodings(tmp_path: Path) -> None:
    (tmp_path / "bom.txt").write_bytes(codecs.BOM_UTF8 + "café".encode())
    (tmp_path / "utf16.txt").write_bytes("naïve résumé".encode("utf-16"))
    (tmp_path / "latin1.txt").write_bytes("déjà vu".encode("latin-1"))
    assert text_of(tmp_path / "bom.txt") == "café"
    assert text_of(tmp_path / "utf16.txt") == "naïve résumé"
    assert text_of(tmp_path / "latin1.txt") == "déjà vu"


def test_html_without_scripts_or_styles(tmp_path: Path) -> None:
    (tmp_path / "p.html").write_text(
        "<html><head><style>p{color:red}</style><script>var secret=1</script></head>"
        "<body><h1>Heading</h1><p>First &amp; second</p><p>Third</p></body></html>"
    )
    assert text_of(tmp_path / "p.html") == "Heading\nFirst & second\nThird"


def test_pdf_pages_and_word(tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "p.pdf", ["Whales sing.", "Ships sail.\nSecond line."])
    segments = reading.read(pdf)
    assert [(s.page, s.text.split()) for s in segments] == [
        (1, ["Whales", "sing."]),
        (2, ["Ships", "sail.", "Second", "line."]),
    ]
    assert [p.page for p in chunk(segments)] == [1, 2]  # a passage never spans two pages
    docx = write_docx(tmp_path / "w.docx", ["Hello", "World"])
    assert text_of(docx) == "Hello\nWorld"


def test_a_pdf_with_an_empty_password_is_read(tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "p.pdf", ["Printing is restricted, reading is not."], password="")
    assert "reading is not" in text_of(pdf)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: write_pdf(d / "x.pdf", ["secret"], password="hunter2"), "password-protected"),
        (lambda d: _write(d / "x.pdf", b"%PDF-1.4\n1 0 obj <<"), "damaged or not a PDF"),
        (lambda d: _write(d / "x.pdf", b"just some bytes"), "damaged or not a PDF"),
        (lambda d: write_pdf(d / "x.pdf", [""]), "no text"),
        (lambda d: _write(d / "x.docx", b"PK not a zip"), "damaged or not a .docx"),
        (lambda d: _write(d / "x.dat", bytes(range(256)) * 10), "binary"),
        (lambda d: _write(d / "x.txt", b"text\x00with a nul"), "binary"),
        (lambda d: d / "missing.txt", "the file is gone"),
        (lambda d: (d / "folder.txt").mkdir() or d / "folder.txt", "it is a folder"),
    ],
)
def test_bad_files_are_skipped_with_a_reason(tmp_path: Path, make, reason) -> None:
    with pytest.raises(Unreadable, match=reason):
        reading.read(make(tmp_path))


def test_huge_and_unreadable_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = _write(tmp_path / "big.txt", b"x" * 2048)
    monkeypatch.setattr(reading, "MAX_FILE_BYTES", 1024)
    with pytest.raises(Unreadable, match="too large"):
        reading.read(big)
    monkeypatch.undo()

    def denied(self: Path) -> bytes:  # root reads any file here: the refusal is injected
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(Unreadable, match="permission denied"):
        reading.read(big)


def test_passages_overlap_and_know_their_lines() -> None:
    text = "\n".join(f"Line {i} says something about topic {i}." for i in range(1, 101))
    passages = chunk([Segment(text, line=1)], size=300, overlap=80)
    assert passages[0].line_start == 1
    assert passages[-1].line_end == 100
    for before, after in zip(passages, passages[1:], strict=False):
        assert after.line_start <= before.line_end  # they share a line or two
        assert len(before.text) <= 300
    # A line longer than a passage is cut at spaces; nothing is lost.
    long = " ".join(f"word{i}" for i in range(500))
    parts = chunk([Segment(long, line=7)], size=200, overlap=0)
    assert " ".join(p.text for p in parts).split() == long.split()
    assert {p.line_start for p in parts} == {7}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
