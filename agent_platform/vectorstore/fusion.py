"""Hybrid search = Reciprocal Rank Fusion (RRF) of the vector and the keyword ranking.

Why RRF: BM25 scores are unbounded and corpus dependent, cosine similarities live in [-1, 1];
adding or averaging them needs a per-corpus calibration that silently drifts as the corpus
changes. RRF uses only ranks, so it needs no calibration, is robust to either list being noisy,
and is what Weaviate's `rankedFusion` does, which keeps the embedded and Weaviate backends
comparable. Each document scores sum(1 / (k + rank)) over the lists it appears in (rank 1-based,
k = 60 as in Cormack et al. 2009).

Score scale: the fused score is divided by its maximum possible value (rank 1 in every list,
`len(lists) / (k + 1)`), so it lies in [0, 1] and 1.0 means "first in every ranking".
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

RRF_K = 60

T = TypeVar("T", bound=Hashable)


def rrf_scores(rankings: Sequence[Sequence[T]], k: int = RRF_K) -> list[tuple[T, float]]:
    """Fuse best-first rankings into (item, normalised RRF score) pairs, best first.

    Ties are broken by first appearance (earlier lists win), so the result is deterministic.
    """
    if k <= 0:
        raise ValueError(f"RRF k must be positive, got {k}")
    if not rankings:
        return []
    fused: dict[T, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    best_possible = len(rankings) / (k + 1)
    ordered = sorted(fused.items(), key=lambda pair: -pair[1])
    return [(item, min(1.0, score / best_possible)) for item, score in ordered]
