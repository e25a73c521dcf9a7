"""The work one render may do: characters built, operations run and seconds spent.

A template is code, and a few lines of it can double a string forty times, nest two
`range(100000)` loops or ask `lipsum` for 100,000 paragraphs. The sandbox (`sandbox.py`) charges
every loop iteration, call, attribute lookup, operator and filter to the `RenderBudget` of the
render in progress, and every string it builds, as it is built, so a runaway template is refused
with the limit it broke long before it exhausts the machine.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2.exceptions import SecurityError

MAX_RENDER_CHARS = 2_000_000  # the rendered prompt, and any one string built on the way
MAX_WORK_CHARS = 20_000_000  # every string a render builds, added up (garbage included)
MAX_OPERATIONS = 1_000_000  # loop iterations, calls, lookups, operators and filters
MAX_RENDER_SECONDS = 2.0  # a prompt renders in milliseconds
MAX_LIPSUM_PARAGRAPHS = 10
_CHECK_CLOCK_EVERY = 256  # operations between two looks at the clock
_FORMAT_NUMBER = re.compile(r"\d+")
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*\}")


class RenderLimitError(SecurityError):
    """A render went past one of its limits; the message names the limit."""


@dataclass(frozen=True)
class RenderLimits:
    """The bounds of one render (module defaults; tests and the isolated renderer pass them)."""

    max_chars: int = MAX_RENDER_CHARS
    max_work_chars: int = MAX_WORK_CHARS
    max_operations: int = MAX_OPERATIONS
    max_seconds: float = MAX_RENDER_SECONDS


class RenderBudget:
    """What one render has spent so far; raises `RenderLimitError` at the first limit crossed."""

    __slots__ = ("chars", "deadline", "limits", "operations")

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.operations = 0
        self.chars = 0
        self.deadline = time.monotonic() + limits.max_seconds

    def tick(self, count: int = 1) -> None:
        """Charge `count` operations (and look at the clock every few hundred)."""
        self.operations += count
        if self.operations > self.limits.max_operations:
            raise RenderLimitError(
                f"over the limit of {self.limits.max_operations:,} operations (loop iterations, "
                "calls, lookups, operators and filters)"
            )
        if self.operations % _CHECK_CLOCK_EVERY < count:
            self.check_clock()

    def check_clock(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitError(f"over the time limit of {self.limits.max_seconds:g} s")

    def built(self, size: int) -> None:
        """Charge a string of `size` characters that the render just built."""
        check_size(size, self.limits.max_chars)
        self.chars += size
        if self.chars > self.limits.max_work_chars:
            raise RenderLimitError(
                f"builds more than {self.limits.max_work_chars:,} characters in all, over the "
                "limit of work for one render"
            )


_CURRENT: ContextVar[RenderBudget | None] = ContextVar("prompt_render_budget", default=None)


@contextmanager
def spending(limits: RenderLimits) -> Iterator[RenderBudget]:
    """Make a fresh budget the one every sandbox operation in this context charges."""
    budget = RenderBudget(limits)
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def current_budget() -> RenderBudget | None:
    """The budget of the render in progress (None outside `render`, e.g. at compile time)."""
    return _CURRENT.get()


def max_chars() -> int:
    budget = _CURRENT.get()
    return budget.limits.max_chars if budget else MAX_RENDER_CHARS


def tick(count: int = 1) -> None:
    budget = _CURRENT.get()
    if budget is not None:
        budget.tick(count)


def built(size: int) -> None:
    budget = _CURRENT.get()
    if budget is not None:
        budget.built(size)
    else:
        check_size(size, MAX_RENDER_CHARS)


def check_size(size: int, limit: int | None = None) -> None:
    """Refuse a string (or sequence) of `size` characters (items) over the limit."""
    limit = max_chars() if limit is None else limit
    if size > limit:
        raise RenderLimitError(
            f"builds a string of {size:,} characters, over the limit of {limit:,}"
        )


def text_size(value: Any, limit: int) -> int:
    """About how many characters `str(value)` has, without building it; counting stops as soon as
    it passes `limit` (so a list holding one huge string a million times costs one step)."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() * 30103 // 100000 + 2
    if isinstance(value, float):
        return 24
    if isinstance(value, dict):
        items: Any = (part for pair in value.items() for part in pair)
    elif isinstance(value, list | tuple | set | frozenset):
        items = iter(value)
    else:
        return 64  # other objects (a namespace, a loop) have short representations
    total = 2
    for item in items:
        total += text_size(item, limit - total) + 4  # quotes, comma and space
        if total > limit:
            break
    return total


def check_text(value: Any) -> None:
    """Refuse turning `value` into text when that text would be over the size limit."""
    if not isinstance(value, str):
        check_size(text_size(value, max_chars()))


def check_format(template: str, args: Any) -> None:
    """Refuse a `%` or `str.format` template whose output could pass the size limit: widths or
    precisions over it (`'%1000000000s' % x`), or fields that repeat a big argument
    (`'{0}{0}{0}'.format(s)`), estimated as every field taking the biggest argument."""
    limit = max_chars()
    specs = [m.group(1) or m.group(2) or "" for m in _PERCENT_SPEC.finditer(template)]
    fields = [m.group(0) for m in _BRACE_SPEC.finditer(template)]
    widths = 0
    for spec in specs + fields:
        if "*" in spec:
            raise RenderLimitError("a '*' width or precision in a format string is not allowed")
        for number in _FORMAT_NUMBER.findall(spec):
            widths += limit + 1 if len(number) > 12 else int(number)
            check_size(widths, limit)
    if isinstance(args, dict):
        values: Any = list(args.values())
    elif isinstance(args, list | tuple):
        values = args
    else:
        values = [args]
    biggest = max((text_size(value, limit) for value in values), default=0)
    check_size(len(template) + widths + (len(specs) + len(fields)) * biggest, limit)
