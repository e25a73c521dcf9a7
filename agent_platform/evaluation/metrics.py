"""Per-answer scores: correctness, groundedness, citations, PII, retrieval, agreement.

Correctness is key-fact containment: an answerable example lists the facts a correct answer must
state (each with `|`-separated alternatives); the answer is correct when every fact's content
words appear in it, and it did not refuse. An unanswerable example is answered correctly by a
refusal. Why not embedding similarity: MiniLM scores "kept 30 days" and "kept 7 days" as near
identical, and the difference is the whole point; token-F1 against the reference is reported too,
but only as a secondary, wording-sensitive signal.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from agent_platform.runtime.response import AgentResponse
from agent_platform.security.pii import configured_detector

_WORD = re.compile(r"[a-z0-9]+")
_CITATION = re.compile(r"\[(\d+)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_STOPWORD_TEXT = (
    "a an and are as at be by for from has have how in is it its of on or that the this to was "
    "were what when which who with do does i my you your can"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split(" "))
GROUNDED_SENTENCE_COVERAGE = 0.6


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def terms(text: str) -> list[str]:
    """Lower-cased, lightly stemmed content words (citations and stop words dropped)."""
    text = _CITATION.sub(" ", text.lower())
    return [_stem(w) for w in _WORD.findall(text) if w not in _STOPWORDS]


def fact_found(fact: str, answer_terms: set[str]) -> bool:
    """A fact is stated when all content words of one of its `|` alternatives are present."""
    for alternative in fact.split("|"):
        wanted = set(terms(alternative))
        if wanted and wanted <= answer_terms:
            return True
    return False


def facts_found(key_facts: Sequence[str], answer: str) -> list[str]:
    answer_terms = set(terms(answer))
    return [fact for fact in key_facts if fact_found(fact, answer_terms)]


def is_correct(*, answerable: bool, key_facts: Sequence[str], answer: str, refused: bool) -> bool:
    if not answerable:
        return refused
    return not refused and len(facts_found(key_facts, answer)) == len(key_facts)


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = Counter(terms(prediction)), Counter(terms(reference))
    common = sum((pred & ref).values())
    if not pred or not ref or not common:
        return 0.0
    precision, recall = common / sum(pred.values()), common / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def groundedness(answer: str, contexts: Iterable[str], *, refused: bool) -> float:
    """Share of answer sentences whose content words are mostly (≥60%) in one context chunk.

    A refusal claims nothing and is grounded by definition; an answer with no context is not.
    """
    if refused:
        return 1.0
    sentences = [s for s in _SENTENCE_END.split(answer.strip()) if terms(s)]
    if not sentences:
        return 0.0
    chunks = [set(terms(c)) for c in contexts]
    if not chunks:
        return 0.0
    supported = 0
    for sentence in sentences:
        words = set(terms(sentence))
        best = max(len(words & chunk) / len(words) for chunk in chunks)
        supported += best >= GROUNDED_SENTENCE_COVERAGE
    return supported / len(sentences)


def citation_problems(response: AgentResponse) -> list[str]:
    """Why the answer's citations are not valid ([] when they are).

    Valid: an answer that does not refuse cites at least one source, every `[n]` marker points at
    one of the n chunks given to the model, and every citation names a retrieved chunk.
    """
    if response.refused:
        return []
    used = [c for c in response.retrieved if c.used]
    used_ids = {c.chunk_id for c in used}
    problems = []
    markers = [int(m) for m in _CITATION.findall(response.answer)]
    if not markers and not response.citations:
        problems.append("the answer cites no source")
    out_of_range = sorted({m for m in markers if not 1 <= m <= len(used)})
    if out_of_range:
        problems.append(f"citation markers {out_of_range} point at no source given to the model")
    unknown = sorted({c.chunk_id for c in response.citations if c.chunk_id not in used_ids})
    if unknown:
        problems.append(f"citations of chunks that were not retrieved: {unknown}")
    return problems


def pii_found(text: str) -> list[str]:
    """Entity types of personal data in `text`. The runtime's own detector
    (`agent_platform.security.pii`), so the compliance gate measures what the answer guard
    enforces: one code path."""
    return configured_detector().types(text)


def recall_at_k(retrieved_sources: Sequence[str], relevant: Iterable[str], k: int) -> float:
    relevant_set = set(relevant)
    if not relevant_set:
        return math.nan
    top = {_basename(s) for s in retrieved_sources[:k]}
    return len({_basename(r) for r in relevant_set} & top) / len(relevant_set)


def reciprocal_rank(retrieved_sources: Sequence[str], relevant: Iterable[str]) -> float:
    relevant_set = {_basename(r) for r in relevant}
    if not relevant_set:
        return math.nan
    for rank, source in enumerate(retrieved_sources, start=1):
        if _basename(source) in relevant_set:
            return 1.0 / rank
    return 0.0


def _basename(source: str) -> str:
    """Sources are compared by file name: an index may store `docs/ops.md` or `ops.md`."""
    return source.replace("\\", "/").rsplit("/", 1)[-1].split("#", 1)[0]


def answers_agree(
    first: str, second: str, *, first_refused: bool, second_refused: bool, key_facts: Sequence[str]
) -> bool:
    """Two answers agree when they make the same refusal decision and commit to the same facts.

    With no key fact in either answer (unanswerable, or both wrong), they must share most wording
    (token F1 ≥ 0.5) instead.
    """
    if first_refused or second_refused:
        return first_refused == second_refused
    first_facts, second_facts = (
        set(facts_found(key_facts, first)),
        set(facts_found(key_facts, second)),
    )
    if first_facts or second_facts:
        return first_facts == second_facts
    return token_f1(first, second) >= 0.5


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no values."""
    data = sorted(v for v in values if not math.isnan(v))
    if not data:
        return math.nan
    position = (len(data) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return data[low] + (data[high] - data[low]) * (position - low)


def mean(values: Iterable[float]) -> float:
    data = [v for v in values if not math.isnan(v)]
    return sum(data) / len(data) if data else math.nan
