"""Errors and the `Problem` record every prompt check reports in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a prompt file, printed as `path:line: message` like a compiler."""

    path: str
    line: int
    message: str
    kind: str = "semantic"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def problem(path: Path | str, line: int | None, message: str, kind: str = "semantic") -> Problem:
    """Build a `Problem`, clamping unknown lines to 1 so the output stays parseable."""
    return Problem(str(path), max(int(line or 1), 1), message, kind)


class PromptError(Exception):
    """Base class of everything the prompt system raises."""


class PromptNotFoundError(PromptError, KeyError):
    """No prompt (or no such version or alias) by that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PromptValidationError(PromptError):
    """A prompt failed validation or its tests; carries every problem found."""

    def __init__(self, name: str, problems: Sequence[Problem]) -> None:
        self.name = name
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"prompt {name!r} is invalid ({len(self.problems)} problem(s)):\n{lines}")


class PromptInputError(PromptError, ValueError):
    """Render inputs that do not match the prompt's declared variables."""


class PromptRenderError(PromptError):
    """Rendering failed: an undefined variable, a sandbox violation or a template error."""


class PromotionRefusedError(PromptError):
    """A promotion, rollback or A/B change that the review rules do not allow."""
