"""Retrieval gating, and checking that an answer is grounded: citations, refusals, limits.

Relevance thresholds. `SearchHit.score` is in [0, 1] in every mode, but each mode has its own
scale (see `agent_platform.vectorstore.validation`), so one number cannot serve all three. When an
`AgentConfig` leaves `retrieval.min_relevance` at its default, the threshold of its mode is used:

* hybrid 0.70 (the spec's minimum). The hybrid score is Reciprocal Rank Fusion normalised by its
  maximum: 1.0 = first in both the vector and the BM25 ranking, 0.5 = first in one list and absent
  from the other, and 61/(60+r) for rank r in both. 0.70 therefore keeps chunks that *both*
  retrievers rank in roughly their top 25, and drops chunks only one of them found. RRF is a rank
  agreement, not an absolute relevance: an off-topic question still gets chunks, and the answer
  refuses (the extractive model's term coverage, the prompt's refusal rule).
* vector 0.60, i.e. cosine 0.2 on the `(1 + cosine) / 2` scale. Measured on the project docs with
  all-MiniLM-L6-v2: on-topic questions' top hits score 0.62-0.78, off-topic ones 0.53-0.56.
* keyword 0.50: the chunk holds at least half of the question's content words (the keyword score is
  that share, see `agent_platform.vectorstore.keyword_scale`). On the project docs on-topic top
  hits score 0.67-1.0, off-topic ones at most 0.33.

An explicit `min_relevance` is applied as given, on the mode's scale.

Optimal relevance. The spec's 0.85 "optimal" is a hybrid-scale number: a hybrid score of 0.85 or
more means both retrievers rank the chunk in roughly their top 12 (or one ranks it first and the
other in its top 27). Such strong chunks are packed into the prompt before memory and the
conversation; chunks between the minimum and 0.85 only get the room those leave (see
`agent_platform.runtime.context_window`). The vector and keyword scales have no calibrated
optimum, so there every chunk above the minimum counts as strong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from agent_platform.runtime.agent_config import RetrievalConfig
from agent_platform.runtime.response import Citation
from agent_platform.runtime.tokens import count_tokens

DEFAULT_MIN_RELEVANCE = {"hybrid": 0.70, "vector": 0.60, "keyword": 0.50}
DEFAULT_OPTIMAL_RELEVANCE = {"hybrid": 0.85}
OUTPUT_TOKEN_SLACK = 2.0  # our counter over-counts sub-word tokens; allow 2x max_output_tokens
_CITATION = re.compile(r"\[(\d{1,4})\]")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def min_relevance(config: RetrievalConfig) -> float:
    """The threshold for `config`: explicit `min_relevance`, else its mode's default."""
    if "min_relevance" in config.model_fields_set:
        return config.min_relevance
    return DEFAULT_MIN_RELEVANCE[config.mode]


def optimal_relevance(config: RetrievalConfig) -> float | None:
    """The strong-match threshold for `config`'s mode, or None (`select_context` never lets it
    fall below the minimum)."""
    return DEFAULT_OPTIMAL_RELEVANCE.get(config.mode)


def cited_numbers(answer: str) -> list[int]:
    """Source numbers cited as `[n]`, unique, in order of first citation."""
    return list(dict.fromkeys(int(n) for n in _CITATION.findall(answer)))


class _Given(Protocol):
    source: str
    chunk_id: str
    score: float


def cite(answer: str, given: Sequence[_Given]) -> list[Citation]:
    """One citation per `[n]` marker of `answer`, numbered as the marker, in order of first
    citation: source n is `given[n - 1]`, the n-th source rendered into the prompt. The answer's
    markers and the citations come from this one mapping, so they always agree (call it after
    `output_problem` has refused markers out of range)."""
    return [
        Citation(
            number=n,
            source=given[n - 1].source,
            chunk_id=given[n - 1].chunk_id,
            score=given[n - 1].score,
        )
        for n in cited_numbers(answer)
    ]


def _normalise(text: str) -> str:
    return _NON_WORD.sub(" ", _CITATION.sub(" ", text.lower())).strip()


def is_refusal(answer: str, refusals: list[str]) -> bool:
    """Whether the answer says the sources do not answer (contains a refusal sentence)."""
    body = _normalise(answer)
    return any(r and _normalise(r) in body for r in refusals)


def output_problem(answer: str, *, sources: int, max_output_tokens: int) -> str | None:
    """Why an answer is unusable (empty, too long, citing a source it was not given), or None."""
    if not answer.strip():
        return "the answer is empty"
    limit = int(max_output_tokens * OUTPUT_TOKEN_SLACK)
    tokens = count_tokens(answer)
    if tokens > limit:
        return f"the answer has {tokens} tokens; the limit is {limit}"
    unknown = [n for n in cited_numbers(answer) if not 1 <= n <= sources]
    if unknown:
        return f"the answer cites {unknown}, but only {sources} source(s) were given"
    return None
