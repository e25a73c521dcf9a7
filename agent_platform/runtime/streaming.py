"""Streaming an answer: which of the model's words a reader may see before the answer is final.

The answer a request returns is only settled after `validate_output` (citations in range, not too
long) and the data-protection guard (no relayed instruction, personal data masked or refused), and
an invalid answer sends the request to the next model. Tokens streamed before that must not leak
what those checks would remove, so `AnswerRelease` lets text out only when

* it is followed by at least `HOLD_WORDS` more words (a name, a phone number or an instruction may
  still be completing in the held-back tail), and
* the whole released prefix passes the same checks (`check`: no unknown citation, no personal
  data, no instruction).

Once a check fails, or a second model starts answering after text of the first one was released,
nothing more is released: the final event carries the settled answer with `replaced=True`. In the
usual case the final event carries only the rest, and the deltas join to exactly the stored answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from agent_platform.runtime.response import AgentResponse

HOLD_WORDS = 4
_WORD_START = re.compile(r"(?<=\s)\S")


@dataclass(frozen=True)
class AnswerDelta:
    """The next piece of the answer, as the model wrote it."""

    text: str


@dataclass(frozen=True)
class StreamedAnswer:
    """The settled answer: `remainder` is what the deltas have not said yet. `replaced`: the
    answer does not continue the deltas (a check changed it, or another model answered); the
    reader should show `response.answer` instead of what it received."""

    response: AgentResponse
    remainder: str
    replaced: bool


StreamEvent = AnswerDelta | StreamedAnswer


class AnswerRelease:
    """Decides how much of the model's text may be streamed (see the module docstring)."""

    def __init__(self, check: Callable[[str], bool], hold_words: int = HOLD_WORDS) -> None:
        self.check = check
        self.hold_words = hold_words
        self.raw = ""
        self.released = ""
        self.blocked = False
        self._source: str | None = None  # the model call whose text is being released

    def feed(self, source: str, delta: str) -> str:
        """Text of `delta` (from the model call `source`) that may go out now; often ""."""
        if self.blocked:
            return ""
        if source != self._source:
            if self.released:  # a retry or a fallback: what was said cannot be taken back
                self.blocked = True
                return ""
            self._source, self.raw = source, ""
        self.raw += delta
        text = self.raw.lstrip()
        starts = [m.start() for m in _WORD_START.finditer(text)]
        if len(starts) < self.hold_words:
            return ""
        candidate = text[: starts[-self.hold_words]].rstrip()
        if len(candidate) <= len(self.released):
            return ""
        if not self.check(candidate):
            self.blocked = True
            return ""
        piece, self.released = candidate[len(self.released) :], candidate
        return piece

    def finish(self, answer: str) -> tuple[str, bool]:
        """(the rest of `answer` after what was released, whether the answer replaced it)."""
        if answer.startswith(self.released):
            return answer[len(self.released) :], False
        return answer, True
