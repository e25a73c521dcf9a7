"""Vector store protocol and backends."""

from agent_platform.vectorstore.base import (
    ChunkRecord,
    IndexCorruptedError,
    SearchHit,
    SearchMode,
    SnapshotInfo,
    SnapshotNotFoundError,
    VectorStore,
    VectorStoreError,
)

__all__ = [
    "ChunkRecord",
    "IndexCorruptedError",
    "SearchHit",
    "SearchMode",
    "SnapshotInfo",
    "SnapshotNotFoundError",
    "VectorStore",
    "VectorStoreError",
]
