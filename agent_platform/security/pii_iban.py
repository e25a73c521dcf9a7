"""IBANs in running text, found by checksum and country format, in any case and grouping.

Replaces Presidio's stock `IbanRecognizer`, which misses IBANs in three ways:

* its registry loads it case-insensitive, so the 4-character groups of its pattern swallow the
  word after the IBAN ("ES19 6741 3674 7593 8199 5812 within" matches up to "with"), and it
  never tries the valid IBAN before that word: Spanish and other long IBANs are lost whenever
  a word follows them;
  case-sensitive instead, it misses IBANs written in lower case ("iban: de89 3704 ...");
* four of its country formats have the wrong length (PT, MU, PS, QA), and ST and SV are missing.

Here a candidate is any `CC99` followed by up to 30 letters or digits, grouped by single spaces
or hyphens; each prefix of it that ends at a group boundary is tried, longest first, and the
first whose country format and ISO 7064 mod-97 checksum hold is the IBAN. A candidate without
one is retried from its next character, so an IBAN right after an IBAN-shaped code is found.
"""

from __future__ import annotations

import re
import string
from typing import Any

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers.generic.iban_patterns import regex_per_country

ENTITY = "IBAN_CODE"
NAME = "IbanCodeRecognizer"
_CANDIDATE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}(?:[ -]?[A-Za-z0-9]){8,30}")
_SEPARATORS = " -"
_DIGITS = {ord(c): str(i) for i, c in enumerate(string.digits + string.ascii_uppercase)}

# Corrections to Presidio's table, from the SWIFT IBAN registry (BBAN after the check digits).
_FIXED = {
    "MU": r"[A-Z]{4}[0-9]{19}[A-Z]{3}",  # 30 characters (Presidio: 28)
    "PS": r"[A-Z]{4}[A-Z0-9]{21}",  # 29 (Presidio: 25)
    "PT": r"[0-9]{21}",  # 25 (Presidio: 21)
    "QA": r"[A-Z]{4}[A-Z0-9]{21}",  # 29 (Presidio: 25)
    "ST": r"[0-9]{21}",  # 25 (missing)
    "SV": r"[A-Z]{4}[0-9]{20}",  # 28 (missing)
}
FORMATS: dict[str, re.Pattern[str]] = {
    **{cc: re.compile(pattern.replace("[ ]?", "")) for cc, pattern in regex_per_country.items()},
    **{cc: re.compile(f"({cc})[0-9]{{2}}{bban}") for cc, bban in _FIXED.items()},
}


def is_iban(compact: str) -> bool:
    """Whether `compact` (upper case, no separators) has its country's format and checksum."""
    country = FORMATS.get(compact[:2])
    if country is None or not country.fullmatch(compact):
        return False
    return int((compact[4:] + compact[:4]).translate(_DIGITS)) % 97 == 1


def _longest_iban(candidate: str) -> int:
    """Length of the longest prefix of `candidate` that is an IBAN ending at a group boundary
    (0 when none is)."""
    ends = [i for i, c in enumerate(candidate) if c in _SEPARATORS] + [len(candidate)]
    for end in reversed(ends):
        compact = candidate[:end].upper().replace(" ", "").replace("-", "")
        if is_iban(compact):
            return end
    return 0


def find_ibans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every IBAN in `text`, in order."""
    found, pos = [], 0
    while match := _CANDIDATE.search(text, pos):
        length = _longest_iban(match.group())
        if length:
            found.append((match.start(), match.start() + length))
            pos = match.start() + length
        else:
            pos = match.start() + 1
    return found


class IbanCodeRecognizer(EntityRecognizer):
    """Presidio recognizer over `find_ibans` (a found IBAN is certain: score 1.0)."""

    def __init__(self) -> None:
        super().__init__(supported_entities=[ENTITY], name=NAME)

    def load(self) -> None:
        return None

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: Any = None
    ) -> list[RecognizerResult]:
        if ENTITY not in entities:
            return []
        metadata = {
            RecognizerResult.RECOGNIZER_NAME_KEY: NAME,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
        }
        return [
            RecognizerResult(ENTITY, start, end, 1.0, recognition_metadata=dict(metadata))
            for start, end in find_ibans(text)
        ]
