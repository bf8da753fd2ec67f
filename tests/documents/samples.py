"""Real files of each kind the documents read, written for the tests: a PDF with text on each
page (written by hand, as a PDF producer writes one), encrypted ones (by pypdf), a .docx (the
zip of XML Word writes)."""

from __future__ import annotations

import zipfile
from pathlib import Path


def write_pdf(path: Path, pages: list[str], password: str | None = None) -> Path:
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        page_no = len(objects) + 1
        content_no = page_no + 1
        kids.append(f"{page_no} 0 R")
        lines = "".join(
            f"({line.replace('(', '[').replace(')', ']')}) Tj T* " for line in text.split("\n")
        )
        stream = f"BT /F1 12 Tf 14 TL 72 720 Td {lines}ET"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_no} 0 R "
            "/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
            ">> >> >> >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    out += trailer.encode()
    path.write_bytes(bytes(out))
    if password is not None:
        import pypdf

        writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(path))
        writer.encrypt(user_password=password, owner_password="owner", algorithm="AES-128")
        with path.open("wb") as f:
            writer.write(f)
    return path


def write_docx(path: Path, paragraphs: list[str]) -> Path:
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body>{body}</w:body></w:document>"
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", document)
    return path


def write_handbook(folder: Path) -> Path:
    """A small collection: Markdown, a two-page PDF, and a password-protected PDF."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lighthouse.md").write_text(
        "# The Eddystone Lighthouse\n\nIt stands on rocks south of Plymouth.\n"
        "It was rebuilt four times; Smeaton's tower is the most famous.\n"
    )
    write_pdf(folder / "manual.pdf", ["Chapter 1. The pump.", "Chapter 2. Oil the pump weekly."])
    write_pdf(folder / "locked.pdf", ["salary figures"], password="hunter2")
    return folder
