"""The vector store contract every backend (embedded, Weaviate) implements.

The knowledge assets and the runtime talk to this protocol only, so switching backends is
configuration. A backend stores, per tenant, chunk records (id, source, text, metadata, vector)
and answers vector, keyword (BM25) and hybrid queries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agent_platform.security.crypto.cipher import PLAINTEXT, ValueCipher

MetadataValue = str | int | float | bool | list[Any] | dict[str, Any] | None
"""JSON data, nested values included; filters compare top-level scalars only."""


class SearchMode(StrEnum):
    VECTOR = "vector"
    KEYWORD = "keyword"
    HYBRID = "hybrid"


@dataclass(frozen=True)
class ChunkRecord:
    """One indexed chunk. `vector` is a unit-norm float32 array."""

    chunk_id: str
    document_id: str
    source: str
    text: str
    vector: np.ndarray
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchHit:
    """One search result. `score` is in [0, 1], higher is better, for every mode."""

    chunk_id: str
    document_id: str
    source: str
    text: str
    score: float
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)


@dataclass(frozen=True)
class SnapshotInfo:
    """A restorable copy of one tenant's index."""

    snapshot_id: str
    tenant: str
    created_at: str  # ISO-8601, UTC
    chunk_count: int
    location: str  # a path or backend URI a person can look at


def canonical_metadata(metadata: Mapping[str, MetadataValue]) -> str:
    """The one JSON form backends store metadata in, so equal metadata compares equal."""
    return json.dumps(dict(metadata), sort_keys=True)


class VectorStoreError(RuntimeError):
    """Base class for vector store failures."""


class IndexCorruptedError(VectorStoreError):
    """The stored index failed an integrity check; the message names the command repairing it.

    `repair` says which: "rebuild" (only derived files are damaged: `rebuild` regenerates them
    from the stored records) or "reindex" (the records themselves: ingest the tenant's sources
    again, or restore a snapshot).
    """

    def __init__(self, message: str, *, repair: str = "reindex") -> None:
        super().__init__(message)
        self.repair = repair


class SnapshotNotFoundError(VectorStoreError):
    """No snapshot with the requested id exists for the tenant."""


@runtime_checkable
class VectorStore(Protocol):
    """Per-tenant chunk storage with vector, keyword and hybrid search."""

    backend_name: str

    def upsert(self, tenant: str, records: Iterable[ChunkRecord]) -> int:
        """Insert or replace records by chunk id; returns how many were written."""
        ...

    def delete(self, tenant: str, chunk_ids: Iterable[str]) -> int:
        """Delete records by chunk id; returns how many existed and were deleted."""
        ...

    def update_metadata(
        self, tenant: str, metadata: Mapping[str, Mapping[str, MetadataValue]]
    ) -> int:
        """Replace the metadata of stored chunks (chunk id -> new metadata), keeping their text
        and vector; unknown ids are skipped. Returns how many chunks were updated."""
        ...

    def indexed_metadata(self, tenant: str) -> dict[str, str]:
        """Chunk id -> its stored metadata as `canonical_metadata`: the ids the index holds, and
        which of them carry stale metadata."""
        ...

    def get_records(self, tenant: str, chunk_ids: Iterable[str]) -> list[ChunkRecord]:
        """The stored records (with vectors) of these ids, in the order asked; unknown ids are
        skipped and repeated ids returned once."""
        ...

    def embedding_space(self, tenant: str) -> str | None:
        """The model and backend that made the tenant's vectors (`Embedder.space`); None for an
        empty tenant or one indexed before the space was recorded."""
        ...

    def set_embedding_space(self, tenant: str, space: str) -> int:
        """Record `space` for the tenant. Stored vectors of a different recorded space are
        deleted first (returns how many), so one index never mixes two embedding spaces."""
        ...

    def count(self, tenant: str) -> int: ...

    def tenants(self) -> list[str]: ...

    def drop_tenant(self, tenant: str) -> None: ...

    def search(
        self,
        tenant: str,
        *,
        query_text: str,
        query_vector: np.ndarray | None,
        k: int = 5,
        mode: SearchMode = SearchMode.HYBRID,
        filters: Mapping[str, MetadataValue] | None = None,
        min_score: float | None = None,
    ) -> list[SearchHit]:
        """Top-k hits; `filters` are equality matches on metadata (and `source`)."""
        ...

    def exact_search(self, tenant: str, query_vector: np.ndarray, k: int = 10) -> list[SearchHit]:
        """Brute-force cosine search, the ground truth for the ANN recall check."""
        ...

    def iter_records(self, tenant: str, batch_size: int = 1024) -> Iterator[list[ChunkRecord]]:
        """Stream every stored record with its vector, in batches."""
        ...

    def rebuild(self, tenant: str) -> int:
        """Rebuild the tenant's ANN and keyword indexes from stored vectors, swapping atomically."""
        ...

    def verify(self, tenant: str) -> None:
        """Raise `IndexCorruptedError` if the tenant's stored index is damaged."""
        ...

    def backup(
        self, tenant: str, snapshots_dir: Path, cipher: ValueCipher = PLAINTEXT
    ) -> SnapshotInfo:
        """Snapshot the tenant; with an enabled `cipher` its text is sealed (`snapshot_seal`)."""
        ...

    def list_snapshots(self, tenant: str, snapshots_dir: Path) -> list[SnapshotInfo]: ...

    def restore(
        self,
        tenant: str,
        snapshots_dir: Path,
        snapshot_id: str,
        cipher: ValueCipher = PLAINTEXT,
    ) -> SnapshotInfo:
        """Verify and restore a snapshot; a sealed one needs the key ring that sealed it."""
        ...

    def prune_snapshots(self, tenant: str, snapshots_dir: Path, retention_days: int) -> list[str]:
        """Delete snapshots older than the retention; returns the ids removed."""
        ...

    def close(self) -> None: ...
