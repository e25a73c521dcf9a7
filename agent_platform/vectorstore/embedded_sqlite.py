"""The SQLite half of the embedded store: records, float32 vectors and the FTS5 keyword index.

SQLite is the source of truth. Every chunk row has an immutable integer `label` (AUTOINCREMENT,
never reused) that is its key in the ANN index; replacing a chunk deletes the old row and inserts
a new one, so the ANN sees only inserts and tombstones (hnswlib's in-place update is slow). Each
write call bumps `seq`; rows and tombstones carry it, so the ANN file can lag behind and be caught
up by replaying `seq > synced_seq` (unsaved ANN changes are never lost on a crash).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from agent_platform.vectorstore.base import ChunkRecord, MetadataValue, canonical_metadata

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks(
    label INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id TEXT NOT NULL UNIQUE,
    document_id TEXT NOT NULL,
    source TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    vector BLOB NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_seq ON chunks(seq);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source);
CREATE TABLE IF NOT EXISTS tombstones(label INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, content='chunks', content_rowid='label', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.label, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.label, old.text);
END;
"""

ROW_COLUMNS = "label, chunk_id, document_id, source, text, metadata"
_WORD = re.compile(r"\w+", re.UNICODE)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with WAL (readers never block the writer) and a busy timeout."""
    uri = f"file:{path}?mode={'ro' if readonly else 'rwc'}"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def filter_sql(
    filters: Mapping[str, MetadataValue], alias: str = "c"
) -> tuple[str, list[MetadataValue]]:
    """`AND ...` equality clauses for source / document_id / metadata keys (keys pre-validated)."""
    clauses, params = [], []
    for key, value in filters.items():
        if key in ("source", "document_id"):
            clauses.append(f"{alias}.{key} = ?")
        else:
            clauses.append(f"json_extract({alias}.metadata, '$.{key}') = ?")
        params.append(value)
    return "".join(f" AND {c}" for c in clauses), params


def fts_query(text: str) -> str | None:
    """User text -> an FTS5 OR-query of quoted words (no FTS syntax errors from user input)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))
    return " OR ".join(f'"{w}"' for w in words) if words else None


class RecordDB:
    """One tenant's records.sqlite: one writer connection, one reader connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = connect(path)
        self._writer.executescript(SCHEMA)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    # --- connections -------------------------------------------------------------------------
    def reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._writer.close()

    # --- meta --------------------------------------------------------------------------------
    def get_meta(self, key: str, conn: sqlite3.Connection | None = None) -> str | None:
        row = (
            (conn or self.reader()).execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        )
        return row[0] if row else None

    def dim(self) -> int | None:
        value = self.get_meta("dim")
        return int(value) if value else None

    def seq(self) -> int:
        return int(self.get_meta("seq") or 0)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction on this thread's connection: every read inside sees one version.

        Another process may commit at any time; without this, `seq`, the replayed rows and the
        row count could come from different versions and disagree.
        """
        conn = self.reader()
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    # --- writes ------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[tuple[sqlite3.Connection, int]]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error); yields (connection, new seq)."""
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            seq = int(self.get_meta("seq", conn) or 0) + 1
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (str(seq),))
            yield conn, seq
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def set_dim(conn: sqlite3.Connection, dim: int) -> None:
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('dim', ?)", (str(dim),))

    @staticmethod
    def delete_ids(conn: sqlite3.Connection, seq: int, chunk_ids: Sequence[str]) -> int:
        deleted = 0
        for chunk_id in chunk_ids:
            row = conn.execute("SELECT label FROM chunks WHERE chunk_id=?", (chunk_id,)).fetchone()
            if row:
                conn.execute("DELETE FROM chunks WHERE label=?", (row[0],))
                conn.execute("INSERT OR REPLACE INTO tombstones VALUES (?, ?)", (row[0], seq))
                deleted += 1
        return deleted

    @classmethod
    def insert(
        cls,
        conn: sqlite3.Connection,
        seq: int,
        records: Sequence[ChunkRecord],
        vectors: Sequence[np.ndarray],
    ) -> None:
        cls.delete_ids(conn, seq, [r.chunk_id for r in records])
        conn.executemany(
            "INSERT INTO chunks(chunk_id, document_id, source, text, metadata, vector, seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.chunk_id,
                    r.document_id,
                    r.source,
                    r.text,
                    canonical_metadata(r.metadata),
                    v.astype(np.float32).tobytes(),
                    seq,
                )
                for r, v in zip(records, vectors, strict=True)
            ],
        )

    @staticmethod
    def set_metadata(
        conn: sqlite3.Connection, metadata: Mapping[str, Mapping[str, MetadataValue]]
    ) -> int:
        """Replace stored metadata in place (the vector and the ANN are untouched)."""
        updated = 0
        for chunk_id, values in metadata.items():
            cursor = conn.execute(
                "UPDATE chunks SET metadata=? WHERE chunk_id=?",
                (canonical_metadata(values), chunk_id),
            )
            updated += cursor.rowcount
        return updated

    def backup_to(self, path: Path) -> None:
        """A consistent online copy (sqlite3 backup API), left in rollback-journal mode."""
        dst = sqlite3.connect(path)
        try:
            self._writer.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")
        finally:
            dst.close()

    def purge_tombstones(self, upto_seq: int) -> None:
        self._writer.execute("DELETE FROM tombstones WHERE seq <= ?", (upto_seq,))

    # --- reads -------------------------------------------------------------------------------
    def count(self) -> int:
        return int(self.reader().execute("SELECT count(*) FROM chunks").fetchone()[0])

    def chunk_metadata(self) -> dict[str, str]:
        """chunk id -> metadata JSON as stored (written by `canonical_metadata`)."""
        return dict(self.reader().execute("SELECT chunk_id, metadata FROM chunks"))

    def changes_since(
        self, seq: int, batch: int = 900
    ) -> tuple[list[int], Iterator[tuple[np.ndarray, np.ndarray]]]:
        """(tombstoned labels, batches of (labels, vectors) written after `seq`)."""
        conn = self.reader()
        dead = [r[0] for r in conn.execute("SELECT label FROM tombstones WHERE seq > ?", (seq,))]

        # Labels via the (seq) index only, then vectors by primary key: cheap for a small
        # incremental write and for a full replay alike (no per-batch scan of the table).
        labels = [r[0] for r in conn.execute("SELECT label FROM chunks WHERE seq > ?", (seq,))]
        labels.sort()

        def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for start in range(0, len(labels), batch):
                part = labels[start : start + batch]
                rows = conn.execute(
                    "SELECT label, vector FROM chunks WHERE label IN "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                    f"({','.join('?' * len(part))}) ORDER BY label",
                    part,
                ).fetchall()
                if rows:
                    yield _labels_vectors(rows)

        return dead, batches()

    def vector_batches(
        self, filters: Mapping[str, MetadataValue] | None = None, batch: int = 8192
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (labels, vectors) matching `filters`, by keyset pages (bounded memory)."""
        where, params = filter_sql(filters or {})
        conn, last = self.reader(), -1
        while True:
            rows = conn.execute(
                f"SELECT c.label, c.vector FROM chunks c WHERE c.label > ?{where} "  # nosec B608  # filter keys are identifiers (check_filters); values are bound parameters
                "ORDER BY c.label LIMIT ?",
                (last, *params, batch),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield _labels_vectors(rows)

    def count_matching(self, filters: Mapping[str, MetadataValue]) -> int:
        where, params = filter_sql(filters)
        sql = f"SELECT count(*) FROM chunks c WHERE 1=1{where}"  # nosec B608  # filter keys are identifiers (check_filters); values are bound parameters
        return int(self.reader().execute(sql, params).fetchone()[0])

    def matching_labels(self, filters: Mapping[str, MetadataValue]) -> set[int]:
        where, params = filter_sql(filters)
        sql = f"SELECT c.label FROM chunks c WHERE 1=1{where}"  # nosec B608  # filter keys are identifiers (check_filters); values are bound parameters
        return {r[0] for r in self.reader().execute(sql, params)}

    def rows(self, labels: Sequence[int]) -> dict[int, tuple[Any, ...]]:
        """label -> (label, chunk_id, document_id, source, text, metadata dict)."""
        out: dict[int, tuple[Any, ...]] = {}
        conn = self.reader()
        for start in range(0, len(labels), 500):
            part = [int(x) for x in labels[start : start + 500]]
            marks = ",".join("?" * len(part))
            sql = f"SELECT {ROW_COLUMNS} FROM chunks WHERE label IN ({marks})"  # nosec B608  # constant table/column names and placeholders; values are bound parameters
            for row in conn.execute(sql, part):
                out[row[0]] = (*row[:5], json.loads(row[5]))
        return out

    def keyword(
        self, text: str, limit: int, filters: Mapping[str, MetadataValue]
    ) -> list[tuple[int, float]]:
        """(label, raw BM25 >= 0) best first; FTS5's bm25() is negative-is-better."""
        query = fts_query(text)
        if query is None:
            return []
        where, params = filter_sql(filters)
        sql = (
            "SELECT c.label, -bm25(chunks_fts) AS s FROM chunks_fts "  # nosec B608  # filter keys are identifiers (check_filters); values are bound parameters
            "JOIN chunks c ON c.label = chunks_fts.rowid "
            f"WHERE chunks_fts MATCH ?{where} ORDER BY bm25(chunks_fts) LIMIT ?"
        )
        return [(r[0], float(r[1])) for r in self.reader().execute(sql, (query, *params, limit))]

    def records(self, chunk_ids: Sequence[str]) -> list[ChunkRecord]:
        """The records of these ids (with vectors), in the order given; unknown ids skipped."""
        found: dict[str, ChunkRecord] = {}
        conn = self.reader()
        for start in range(0, len(chunk_ids), 500):
            part = list(chunk_ids[start : start + 500])
            sql = (
                f"SELECT {ROW_COLUMNS}, vector FROM chunks "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                f"WHERE chunk_id IN ({','.join('?' * len(part))})"
            )
            found.update((r[1], _record(r)) for r in conn.execute(sql, part))
        return [found[c] for c in chunk_ids if c in found]

    def iter_records(self, batch_size: int) -> Iterator[list[ChunkRecord]]:
        """Keyset pages over a private connection: no long-lived cursor, bounded memory."""
        conn, last = connect(self.path, readonly=True), -1
        try:
            while True:
                rows = conn.execute(
                    f"SELECT {ROW_COLUMNS}, vector FROM chunks WHERE label > ? "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                    "ORDER BY label LIMIT ?",
                    (last, batch_size),
                ).fetchall()
                if not rows:
                    return
                last = rows[-1][0]
                yield [_record(r) for r in rows]
        finally:
            conn.close()

    def integrity_problems(self) -> list[str]:
        """`PRAGMA quick_check` plus FTS5's own integrity check; empty when healthy."""
        conn = self.reader()
        problems = [r[0] for r in conn.execute("PRAGMA quick_check") if r[0] != "ok"]
        try:
            self._writer.execute(
                "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 0)"
            )
        except sqlite3.DatabaseError as exc:
            problems.append(f"full-text index: {exc}")
        return problems

    def rebuild_fts(self) -> None:
        self._writer.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")


def _record(row: tuple[Any, ...]) -> ChunkRecord:
    """A `ROW_COLUMNS, vector` row as a record."""
    return ChunkRecord(
        chunk_id=row[1],
        document_id=row[2],
        source=row[3],
        text=row[4],
        metadata=json.loads(row[5]),
        vector=np.frombuffer(row[6], dtype=np.float32).copy(),
    )


def _labels_vectors(rows: list[tuple[Any, ...]]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
    return labels, vectors.reshape(len(rows), -1)
