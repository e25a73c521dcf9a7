"""Content-addressed embedding cache, shared by every tenant.

Keyed by (model name, sha256 of the text), so a chunk that appears again, in this tenant or any
other, is never embedded twice by the same model.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """A SQLite table of float32 vectors. Safe to share across threads of one process."""

    _SCHEMA = """
        CREATE TABLE IF NOT EXISTS embeddings (
            model TEXT NOT NULL,
            text_hash TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL,
            PRIMARY KEY (model, text_hash)
        ) WITHOUT ROWID
    """
    _LOOKUP_BATCH = 500  # stays under SQLite's host-parameter limit

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(self._SCHEMA)
        self._conn.commit()

    def get_many(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        with self._lock:
            for start in range(0, len(unique), self._LOOKUP_BATCH):
                batch = unique[start : start + self._LOOKUP_BATCH]
                marks = ",".join("?" * len(batch))
                rows = self._conn.execute(
                    f"SELECT text_hash, vector FROM embeddings "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                    f"WHERE model = ? AND text_hash IN ({marks})",
                    (model, *batch),
                )
                for digest, blob in rows:
                    found[digest] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(
        self, model: str, vectors: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]]
    ) -> None:
        items = vectors.items() if isinstance(vectors, Mapping) else vectors
        rows = [
            (model, digest, int(vec.shape[0]), np.ascontiguousarray(vec, np.float32).tobytes())
            for digest, vec in items
        ]
        with self._lock:
            self._conn.executemany(
                "INSERT OR REPLACE INTO embeddings (model, text_hash, dim, vector) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
            self._conn.commit()

    def count(self, model: str | None = None) -> int:
        with self._lock:
            if model is None:
                count: int = self._conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
            else:
                count = self._conn.execute(
                    "SELECT COUNT(*) FROM embeddings WHERE model = ?", (model,)
                ).fetchone()[0]
            return count

    def close(self) -> None:
        with self._lock:
            self._conn.close()
