"""The convention by which retrieved chunks reach a model, and by which answers cite them.

Answers cite a source as `[n]`, numbered from 1 in the order the sources were given. Two
renderings of the numbered sources are understood (`parse_sources` reads both):

* Source blocks, what the agent runtime sends: the registered `grounded_qa_system` prompt renders
  each chunk as an XML-like block whose `title` is the chunk's source path::

      <source id="1" title="docs/handbook.md">
      [1] docs/handbook.md
      The refund window is 30 days. Items must be unused.
      </source>

* Source lines, what `pack_context` (and prompts written without the registry) send::

      Sources:
      [1] (source: docs/handbook.md) The refund window is 30 days. Items must be unused.

`format_sources` writes the line form; `parse_sources` reads either back (the extractive answerer
uses it); `strip_sources` removes both, leaving the instruction or question.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

SOURCES_HEADER = "Sources:"
_SOURCE_LINE = re.compile(r"^\[(\d+)\] \(source: ([^)\n]*)\) ?(.*)$")
_SOURCE_BLOCK = re.compile(r"<source\s+id=\"(\d+)\"([^>]*)>(.*?)</source>", re.DOTALL)
_TITLE = re.compile(r"\btitle=\"([^\"]*)\"")


@dataclass(frozen=True)
class NumberedSource:
    """One source as a model sees it."""

    number: int
    source: str
    text: str


def format_sources(items: list[tuple[str, str]]) -> str:
    """Render (source, text) pairs as a numbered block, numbering from 1."""
    lines = [SOURCES_HEADER]
    for number, (source, text) in enumerate(items, start=1):
        flat = " ".join(text.split())
        lines.append(f"[{number}] (source: {source}) {flat}")
    return "\n".join(lines)


def _block_source(match: re.Match[str]) -> NumberedSource:
    number = int(match[1])
    title_match = _TITLE.search(match[2])
    title = html.unescape(title_match[1]).strip() if title_match else ""
    lines = [line.strip() for line in match[3].strip().splitlines()]
    if lines and re.match(rf"^\[{number}\]", lines[0]):  # the "[n] title" heading line
        lines = lines[1:]
    return NumberedSource(number, title, "\n".join(line for line in lines if line))


def parse_sources(text: str) -> list[NumberedSource]:
    """Every numbered source in `text` (blocks, then lines), in order of appearance.

    A block's text keeps its line breaks (headings stay on their own line); a line's cannot.
    """
    found = [_block_source(m) for m in _SOURCE_BLOCK.finditer(text)]
    for line in _SOURCE_BLOCK.sub("", text).splitlines():
        match = _SOURCE_LINE.match(line.strip())
        if match:
            found.append(NumberedSource(int(match[1]), match[2].strip(), match[3].strip()))
    return found


def strip_sources(text: str) -> str:
    """`text` without its source blocks, source lines and header (the instruction/question)."""
    kept = [
        line
        for line in _SOURCE_BLOCK.sub("", text).splitlines()
        if not _SOURCE_LINE.match(line.strip()) and line.strip() != SOURCES_HEADER
    ]
    return "\n".join(kept).strip()
