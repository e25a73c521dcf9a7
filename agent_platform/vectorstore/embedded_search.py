"""Query execution for the embedded store: ANN, filtered ANN, exact fallback, keyword, RRF.

Keyword hits are found by FTS5 (BM25 order) and scored and ranked by query coverage (see
`keyword_scale`); the hybrid mode fuses that keyword ranking with the vector ranking.

Filtered vector search must still return k hits when k records match. A small matching subset
is searched exactly (cheaper than a filtered graph walk and always complete); a large one uses
hnswlib's filtered search, which keeps walking until it has k allowed labels; if hnswlib still
cannot fill k, the exact search over the subset answers instead.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from agent_platform.vectorstore import keyword_scale
from agent_platform.vectorstore.base import MetadataValue, SearchHit, SearchMode
from agent_platform.vectorstore.embedded_tenant import TenantState
from agent_platform.vectorstore.fusion import rrf_scores
from agent_platform.vectorstore.validation import vector_score

SLACK = 5  # extra ANN hits, in case a row was deleted but the ANN is mid-sync
HYBRID_DEPTH = 50  # how deep each list goes before fusion

Filters = Mapping[str, MetadataValue]


def exact(state: TenantState, vec: np.ndarray, k: int, flt: Filters) -> list[tuple[int, float]]:
    """Brute-force cosine over stored vectors in batches; memory bounded by the batch size."""
    best_labels = np.zeros(0, dtype=np.int64)
    best_scores = np.zeros(0, dtype=np.float32)
    for labels, vectors in state.db.vector_batches(flt):
        scores = vectors @ vec
        labels = np.concatenate([best_labels, labels])
        scores = np.concatenate([best_scores, scores])
        if len(scores) > k:
            keep = np.argpartition(-scores, k - 1)[:k]
            labels, scores = labels[keep], scores[keep]
        best_labels, best_scores = labels, scores
    order = np.argsort(-best_scores, kind="stable")
    return [(int(best_labels[i]), float(best_scores[i])) for i in order]


def vector_ranked(
    state: TenantState, vec: np.ndarray, k: int, flt: Filters
) -> list[tuple[int, float]]:
    """(label, cosine) best first, up to k (+ SLACK from the ANN)."""
    ann = state.ann
    if ann is None or ann.live == 0:
        return []
    if not flt:
        found = ann.search(vec, k + SLACK)
    else:
        matching = state.db.count_matching(flt)
        if matching == 0:
            return []
        if matching <= state.params.exact_filter_max:
            return exact(state, vec, k, flt)
        found = ann.search(vec, k + SLACK, allowed=state.db.matching_labels(flt))
    if found is None:
        return exact(state, vec, k, flt)
    labels, cosines = found
    return list(zip(labels.tolist(), cosines.tolist(), strict=True))


def _matched_terms(state: TenantState, terms: list[str], labels: list[int]) -> dict[int, set[str]]:
    """Which of `terms` each chunk contains, as FTS5's tokenizer (Porter stemming) matches them."""
    out: dict[int, set[str]] = {label: set() for label in labels}
    if not labels or not terms:
        return out
    marks = ",".join("?" * len(labels))
    sql = f"SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid IN ({marks})"  # nosec B608  # constant table/column names and placeholders; values are bound parameters
    conn = state.db.reader()
    for term in terms:  # \w+ words: no quote can reach the FTS query syntax
        for (label,) in conn.execute(sql, (f'"{term}"', *labels)):
            out[label].add(term)
    return out


def keyword_ranked(
    state: TenantState, text: str, depth: int, flt: Filters
) -> list[tuple[int, float]]:
    """(label, keyword score) best first: up to `depth` BM25 candidates that contain a content
    word of the query, ranked by the share of content words they contain."""
    terms = keyword_scale.query_terms(text)
    if not terms:
        return []
    labels = [label for label, _ in state.db.keyword(" ".join(terms), depth, flt)]
    return keyword_scale.rank(labels, terms, _matched_terms(state, terms, labels))


def hits(
    state: TenantState, ranked: list[tuple[int, float]], k: int, min_score: float | None
) -> list[SearchHit]:
    """Attach record fields; drop labels that vanished and scores below `min_score`."""
    rows = state.db.rows([label for label, _ in ranked])
    out = []
    for label, score in ranked:
        row = rows.get(label)
        if row is None or (min_score is not None and score < min_score):
            continue
        out.append(
            SearchHit(
                chunk_id=row[1],
                document_id=row[2],
                source=row[3],
                text=row[4],
                score=float(score),
                metadata=row[5],
            )
        )
        if len(out) == k:
            break
    return out


def search(
    state: TenantState,
    mode: SearchMode,
    text: str,
    vec: np.ndarray | None,
    k: int,
    flt: Filters,
    min_score: float | None,
) -> list[SearchHit]:
    if mode is SearchMode.KEYWORD:
        ranked = keyword_ranked(state, text, max(HYBRID_DEPTH, 2 * k), flt)
    elif mode is SearchMode.VECTOR:
        assert vec is not None  # nosec B101  # narrows a type for mypy; the invariant holds by construction
        ranked = [(lb, vector_score(c)) for lb, c in vector_ranked(state, vec, k, flt)]
    else:
        assert vec is not None  # nosec B101  # narrows a type for mypy; the invariant holds by construction
        depth = max(HYBRID_DEPTH, 2 * k)
        by_vector = [lb for lb, _ in vector_ranked(state, vec, depth, flt)]
        by_keyword = [lb for lb, _ in keyword_ranked(state, text, depth, flt)]
        ranked = rrf_scores([by_vector, by_keyword])
    return hits(state, ranked, k, min_score)
