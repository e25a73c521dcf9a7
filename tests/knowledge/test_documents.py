"""Loading source files: every supported format; every bad file skipped with a reason."""

from pathlib import Path

import pytest

from agent_platform.knowledge.documents import (
    SkippedFile,
    SourceDocument,
    fingerprint_directory,
    normalise_text,
    scan_documents,
)

MAX_BYTES = 10_000


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with a text stream, written by hand (no PDF writer is a dependency)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "guides").mkdir(parents=True)
    (root / "guides" / "intro.md").write_text("# Intro\r\n\r\n\r\n\r\nHello   \r\nworld\n")
    (root / "notes.txt").write_text("Plain notes about the platform.")
    (root / "page.html").write_text(
        "<html><head><script>var secret = 1;</script><style>p{}</style></head>"
        "<body><h1>Title</h1><p>Visible paragraph.</p></body></html>"
    )
    (root / "manual.pdf").write_bytes(minimal_pdf("Backups run every night"))
    (root / "binary.txt").write_bytes(b"abc\x00\x01\x02def")
    (root / "empty.md").write_text("   \n")
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (root / "big.md").write_text("x" * (MAX_BYTES + 1))
    (root / "image.png").write_bytes(b"\x89PNG\r\n")
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    outside = tmp_path / "secret.md"
    outside.write_text("outside the source directory")
    (root / "escape.md").symlink_to(outside)
    (root / "inside.md").symlink_to(root / "notes.txt")
    (root / "dangling.md").symlink_to(root / "does-not-exist.md")
    (root / ".hidden.md").write_text("hidden files are ignored")
    return root


def test_loads_supported_formats_and_skips_bad_files_with_reasons(source_dir: Path) -> None:
    items = list(scan_documents(source_dir, MAX_BYTES))
    docs = {i.document_id: i for i in items if isinstance(i, SourceDocument)}
    skipped = {i.path: i.reason for i in items if isinstance(i, SkippedFile)}

    assert set(docs) == {"guides/intro.md", "notes.txt", "page.html", "manual.pdf", "inside.md"}
    assert docs["guides/intro.md"].text == "# Intro\n\nHello\nworld"
    assert "secret" not in docs["page.html"].text
    assert docs["page.html"].text == "# Title\n\nVisible paragraph."
    assert "Backups run every night" in docs["manual.pdf"].text
    assert docs["manual.pdf"].kind == "pdf"
    assert len(docs["notes.txt"].content_hash) == 64

    assert "binary" in skipped["binary.txt"]
    assert "empty" in skipped["empty.md"]
    assert "UTF-8" in skipped["latin1.txt"]
    assert "too large" in skipped["big.md"]
    assert "unsupported file type '.png'" in skipped["image.png"]
    assert "PDF" in skipped["broken.pdf"]
    assert "outside the source directory" in skipped["escape.md"]
    assert "unreadable" in skipped["dangling.md"]
    assert ".hidden.md" not in skipped and ".hidden.md" not in docs


def test_missing_source_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match="does not exist"):
        list(scan_documents(tmp_path / "nope", MAX_BYTES))


def test_fingerprint_follows_content_not_mtime(source_dir: Path) -> None:
    before = fingerprint_directory(source_dir)
    notes = source_dir / "notes.txt"
    notes.touch()
    assert fingerprint_directory(source_dir) == before
    notes.write_text("Changed notes.")
    after = fingerprint_directory(source_dir)
    assert after["notes.txt"] != before["notes.txt"]
    assert after["inside.md"] != before["inside.md"]  # a symlink to notes.txt
    changed = {"notes.txt", "inside.md"}
    assert {k: v for k, v in after.items() if k not in changed} == {
        k: v for k, v in before.items() if k not in changed
    }


def test_normalise_text_removes_control_characters() -> None:
    assert normalise_text("a\u0007b\tc\r\n\r\n\r\n\r\nd  ") == "ab\tc\n\nd"
