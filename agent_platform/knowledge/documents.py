"""Load a tenant's source directory into normalised text documents.

Every file is either loaded or skipped with a reason a person can act on (binary, empty,
unreadable, not UTF-8, too large, unsupported type, a symlink that leaves the source directory,
a PDF without extractable text). Skipping never fails the run.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES


@dataclass(frozen=True)
class SourceDocument:
    """A loaded document. `document_id` is its path relative to the source directory."""

    document_id: str
    content_hash: str  # sha256 of the file's bytes: what the sensor compares
    text: str
    size_bytes: int
    kind: str  # markdown | text | html | pdf


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


class UnreadableDocumentError(ValueError):
    """A file that cannot become text; the message is the skip reason."""


def iter_source_files(source_dir: Path) -> Iterator[Path]:
    """Every file under `source_dir`, sorted, hidden files and directories excluded."""
    for path in sorted(source_dir.rglob("*")):
        relative = path.relative_to(source_dir)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() or path.is_symlink():
            yield path


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalise_text(text: str) -> str:
    """NFC, LF line endings, no trailing spaces, at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _decode_utf8(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise UnreadableDocumentError("binary content (NUL bytes) in a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableDocumentError(f"not valid UTF-8 (byte {exc.start})") from exc


_HTML_BLOCKS = ["p", "div", "section", "article", "pre", "li", "tr", "br", "title", "table"]


def _html_to_text(data: bytes) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode_utf8(data), "html.parser")
    for element in soup(["script", "style", "noscript", "template"]):
        element.decompose()
    # Headings become Markdown headings, so chunking and answering treat them as titles rather
    # than the first words of the next paragraph; block elements end their line, while inline
    # elements (code, links, emphasis) stay inside their sentence.
    for heading in soup(["h1", "h2", "h3", "h4", "h5", "h6"]):
        title = heading.get_text(" ", strip=True)
        heading.replace_with(f"\n\n{'#' * int(heading.name[1])} {title}\n\n")
    for block in soup(_HTML_BLOCKS):
        block.insert_after("\n\n" if block.name in {"p", "div", "section", "pre"} else "\n")
    return soup.get_text()


def _pdf_to_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise UnreadableDocumentError(f"unreadable PDF: {exc}") from exc
    return "\n\n".join(pages)


def _kind(suffix: str) -> str:
    if suffix in HTML_SUFFIXES:
        return "html"
    if suffix in PDF_SUFFIXES:
        return "pdf"
    return "markdown" if suffix in {".md", ".markdown"} else "text"


def load_document(path: Path, source_dir: Path, max_bytes: int) -> SourceDocument:
    """Load one file or raise `UnreadableDocumentError` with the reason it is skipped."""
    suffix = path.suffix.lower()
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(source_dir.resolve()):
            raise UnreadableDocumentError("symlink points outside the source directory")
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableDocumentError(
            f"unsupported file type {suffix or '(none)'!r}; supported: "
            + ", ".join(sorted(SUPPORTED_SUFFIXES))
        )
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UnreadableDocumentError(f"too large ({size} bytes; the limit is {max_bytes})")
        data = path.read_bytes()
    except UnreadableDocumentError:
        raise
    except OSError as exc:
        raise UnreadableDocumentError(f"unreadable: {exc.strerror or exc}") from exc
    if not data.strip():
        raise UnreadableDocumentError("empty file")
    if suffix in PDF_SUFFIXES:
        raw_text = _pdf_to_text(data)
    elif suffix in HTML_SUFFIXES:
        raw_text = _html_to_text(data)
    else:
        raw_text = _decode_utf8(data)
    text = normalise_text(raw_text)
    if not text:
        raise UnreadableDocumentError("no text after extraction")
    return SourceDocument(
        document_id=path.relative_to(source_dir).as_posix(),
        content_hash=hash_bytes(data),
        text=text,
        size_bytes=len(data),
        kind=_kind(suffix),
    )


def scan_documents(source_dir: Path, max_bytes: int) -> Iterator[SourceDocument | SkippedFile]:
    """Load every file under `source_dir`, yielding documents and skips in path order."""
    if not source_dir.is_dir():
        raise NotADirectoryError(f"source directory {str(source_dir)!r} does not exist")
    for path in iter_source_files(source_dir):
        relative = path.relative_to(source_dir).as_posix()
        try:
            yield load_document(path, source_dir, max_bytes)
        except UnreadableDocumentError as exc:
            yield SkippedFile(path=relative, reason=str(exc))


def directory_digest(source_dir: Path) -> str:
    """One hash over `fingerprint_directory`: what the sources sensor compares and what the
    `source_documents` asset records, so a sensor without a cursor knows what was loaded."""
    encoded = json.dumps(fingerprint_directory(source_dir), sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()


def fingerprint_directory(source_dir: Path) -> dict[str, str]:
    """Content hash of every supported file (path → sha256), for change detection by sensors."""
    hashes: dict[str, str] = {}
    for path in iter_source_files(source_dir):
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            continue
        try:
            hashes[path.relative_to(source_dir).as_posix()] = hash_bytes(path.read_bytes())
        except OSError:
            continue
    return hashes
