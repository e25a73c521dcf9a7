"""The ANN half of the embedded store: an hnswlib HNSW graph keyed by SQLite row labels.

hnswlib won the measurement in BENCHMARKS.md (fastest build and query on this class of machine,
deletes via tombstones). Writes always append fresh labels: hnswlib's in-place update and slot
reuse (`replace_deleted`) cost ~8x an append; `rebuild` compacts the tombstones.

The index file is never trusted blindly: its size and SHA-256 are checked against the manifest
before hnswlib reads it, because hnswlib reads a truncated or garbage file without validation
(undefined behaviour, up to a segfault).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path

import hnswlib
import numpy as np

from agent_platform.vectorstore.snapshots import file_digest


@dataclass(frozen=True)
class AnnParams:
    """HNSW knobs, tuned by benchmarks/search.py (BENCHMARKS.md, "Search"): ef_search=32 keeps
    recall@10 at 0.99-1.0 on 100k clustered or real MiniLM vectors at 11-13x numpy brute-force QPS;
    96 reaches 1.0 everywhere at 5-9x. Settings: `hnsw_ef_search`."""

    m: int = 16
    ef_construction: int = 128
    ef_search: int = 32
    exact_filter_max: int = 20_000
    """A filtered query matching at most this many rows is answered exactly, not by the ANN."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class AnnIndex:
    """Cosine HNSW over unit vectors; `live` counts non-deleted labels (hnswlib does not)."""

    def __init__(self, dim: int, params: AnnParams, capacity: int = 1024, live: int = 0) -> None:
        self.dim = dim
        self.params = params
        self.index = hnswlib.Index(space="cosine", dim=dim)
        self.live = live
        if capacity:
            self.index.init_index(
                max_elements=capacity,
                ef_construction=params.ef_construction,
                M=params.m,
            )
            self.index.set_ef(params.ef_search)

    @classmethod
    def load(cls, path: Path, dim: int, params: AnnParams, live: int) -> AnnIndex:
        """Load a file whose checksum the caller has already verified."""
        ann = cls(dim, params, capacity=0, live=live)
        ann.index.load_index(str(path))
        ann.index.set_ef(params.ef_search)
        return ann

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Insert fresh labels (labels are never reused, so this is never an in-place update)."""
        if len(labels) == 0:
            return
        needed = self.index.get_current_count() + len(labels)
        if needed > self.index.get_max_elements():
            self.index.resize_index(max(needed, 2 * self.index.get_max_elements()))
        self.index.add_items(vectors, labels)
        self.live += len(labels)

    @property
    def tombstones(self) -> int:
        stored: int = self.index.get_current_count()  # hnswlib is untyped
        return stored - self.live

    def remove(self, labels: Collection[int]) -> int:
        """Tombstone labels; unknown or already-deleted labels are skipped. Returns how many."""
        removed = 0
        for label in labels:
            try:
                self.index.mark_deleted(int(label))
            except RuntimeError:
                continue
            removed += 1
        self.live -= removed
        return removed

    def search(
        self, vector: np.ndarray, k: int, allowed: Collection[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(labels, cosine similarities) best first, or None when hnswlib cannot fill k."""
        k = min(k, self.live if allowed is None else min(self.live, len(allowed)))
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        self.index.set_ef(max(self.params.ef_search, k))
        flt = None if allowed is None else (lambda label: label in allowed)
        try:
            labels, distances = self.index.knn_query(vector, k=k, num_threads=1, filter=flt)
        except RuntimeError:
            return None
        return labels[0].astype(np.int64), 1.0 - distances[0]

    def save(self, path: Path) -> tuple[str, int]:
        """Write to `path` via a temporary file and os.replace; returns (sha256, bytes)."""
        tmp = path.with_name(path.name + ".tmp")
        self.index.save_index(str(tmp))
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(path)  # os.replace: atomic on POSIX
        return file_digest(path), path.stat().st_size
