"""The keyword score scale: the share of the query's content words that a chunk contains.

Why not a map of the raw BM25 score: BM25 depends on the corpus. Its inverse document frequency
is near zero for a word found in most chunks (SQLite FTS5 clamps it to 1e-6 once a word is in more
than half of them), so in a small tenant the one chunk that holds every word of the question
scored 0.0 and `min_score` dropped it. Coverage means the same in every tenant and every backend:

    keyword score = |content words of the query found in the chunk| / |content words of the query|

Content words are the query's distinct words less stop words ("what", "is", "the", …); a query of
stop words only keeps all its words. Words match as the backend's tokenizer matches them (the
embedded store stems with Porter, so "refunds" finds "refund"). 1.0 = the chunk contains every
content word, 0.5 = half of them; a chunk that matches only stop words is not a keyword hit.
Chunks are ranked by coverage, then by BM25 (rarer and more frequent words first).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Hashable)

_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORD_TEXT = (
    "a an and are as at be been being but by can could did do does doing for from had has have "
    "having he her here hers him his how i if in into is it its itself me my no nor not of on "
    "or our ours she should so some such than that the their theirs them then there these they "
    "this those to too under until up very was we were what when where which while who whom why "
    "will with would you your yours about above after again against all am any because before "
    "below between both during each few further more most once only other over own same just "
    "tell please"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def query_terms(text: str) -> list[str]:
    """The distinct content words of a query, lower-cased, in order (all words if every word is a
    stop word)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))
    content = [w for w in words if w not in STOPWORDS]
    return content or words


def coverage(found: int, wanted: int) -> float:
    """The keyword score: the share of the content words found, in [0, 1]."""
    return 0.0 if wanted <= 0 else min(1.0, found / wanted)


def rank(
    candidates: Sequence[T],
    terms: Sequence[str],
    matched: Mapping[T, set[str]] | Callable[[T], set[str]],
) -> list[tuple[T, float]]:
    """(candidate, keyword score) by coverage, ties kept in the given (BM25) order; candidates
    matching no content word are dropped."""
    lookup = matched if callable(matched) else (lambda c: matched.get(c, set()))
    scored = [(c, coverage(len(lookup(c) & set(terms)), len(terms))) for c in candidates]
    kept = [(i, c, s) for i, (c, s) in enumerate(scored) if s > 0]
    kept.sort(key=lambda t: (-t[2], t[0]))
    return [(c, s) for _, c, s in kept]


def words(text: str) -> set[str]:
    """The lower-cased words of a text (a backend without stemming matches on these)."""
    return {w.lower() for w in _WORD.findall(text)}
