"""The convention by which retrieved chunks reach a model, and by which answers cite them.

A context block lists numbered sources, one per paragraph::

    [1] (source: docs/handbook.md) The refund window is 30 days. Items must be unused.
    [2] (source: faq.html) Shipping takes 3 to 5 business days.

Answers cite a source as `[n]`. `format_sources` writes the block (the context packer uses it);
`parse_sources` reads it back (the extractive answerer uses it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SOURCES_HEADER = "Sources:"
_SOURCE_LINE = re.compile(r"^\[(\d+)\] \(source: ([^)\n]*)\) ?(.*)$")


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


def parse_sources(text: str) -> list[NumberedSource]:
    """Every `[n] (source: ...) text` line in `text`, in order of appearance."""
    found: list[NumberedSource] = []
    for line in text.splitlines():
        match = _SOURCE_LINE.match(line.strip())
        if match:
            found.append(NumberedSource(int(match[1]), match[2].strip(), match[3].strip()))
    return found


def strip_sources(text: str) -> str:
    """`text` without its source lines and header (what remains is the instruction/question)."""
    kept = [
        line
        for line in text.splitlines()
        if not _SOURCE_LINE.match(line.strip()) and line.strip() != SOURCES_HEADER
    ]
    return "\n".join(kept).strip()
