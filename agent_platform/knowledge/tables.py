"""Per-tenant Parquet tables that carry data between the knowledge assets.

Each asset streams its output into a new file and swaps it in atomically, and each reads its
input in record batches, so memory stays flat as a corpus grows.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

DOCUMENTS_SCHEMA = pa.schema(
    [
        ("document_id", pa.string()),
        ("content_hash", pa.string()),
        ("kind", pa.string()),
        ("size_bytes", pa.int64()),
        ("text", pa.large_string()),
    ]
)

CHUNKS_SCHEMA = pa.schema(
    [
        ("chunk_id", pa.string()),
        ("document_id", pa.string()),
        ("document_hash", pa.string()),
        ("chunk_key", pa.string()),
        ("position", pa.int32()),
        ("n_tokens", pa.int32()),
        ("text", pa.large_string()),
        ("pii_types", pa.string()),  # comma-separated entity types found (security/pii.py)
    ]
)


def embeddings_schema(dimension: int, model_name: str, space: str | None = None) -> pa.Schema:
    """`space` (model and backend, `Embedder.space`) is what the index records for the vectors;
    without it the vectors count as the model's torch vectors."""
    return pa.schema(
        [("chunk_id", pa.string()), ("vector", pa.list_(pa.float32(), dimension))],
        metadata={"model": model_name, "dimension": str(dimension), "space": space or model_name},
    )


def embeddings_space(schema: pa.Schema) -> str | None:
    """The embedding space an embeddings table was written in (None: not recorded)."""
    metadata = schema.metadata or {}
    value = metadata.get(b"space") or metadata.get(b"model")
    return value.decode() if value else None


class TableWriter:
    """Buffers rows and writes them as row groups of `rows_per_group`."""

    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema, rows_per_group: int) -> None:
        self._writer = writer
        self._schema = schema
        self._rows_per_group = rows_per_group
        self._buffer: list[dict[str, Any]] = []
        self.rows_written = 0

    def write_row(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self._rows_per_group:
            self.flush()

    def write_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        self.flush()
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        self._writer.write_table(table.cast(self._schema))
        self.rows_written += table.num_rows

    def flush(self) -> None:
        if not self._buffer:
            return
        self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=self._schema))
        self.rows_written += len(self._buffer)
        self._buffer.clear()


class TenantTables:
    """The documents, chunks and embeddings tables of one tenant."""

    NAMES = ("documents", "chunks", "embeddings")

    def __init__(self, knowledge_dir: Path, tenant: str) -> None:
        self.tenant = tenant
        self.directory = knowledge_dir / tenant

    def path(self, name: str) -> Path:
        if name not in self.NAMES:
            raise ValueError(f"unknown table {name!r}; expected one of {self.NAMES}")
        return self.directory / f"{name}.parquet"

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def num_rows(self, name: str) -> int:
        return pq.ParquetFile(self.path(name)).metadata.num_rows if self.exists(name) else 0

    def schema(self, name: str) -> pa.Schema:
        return pq.read_schema(self.path(name))

    @contextlib.contextmanager
    def write(
        self, name: str, schema: pa.Schema, rows_per_group: int = 2048
    ) -> Iterator[TableWriter]:
        """Write a new version of a table; it replaces the old one only if the block succeeds."""
        final = self.path(name)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_suffix(f".parquet.tmp-{os.getpid()}")
        writer = pq.ParquetWriter(tmp, schema, compression="zstd")
        table_writer = TableWriter(writer, schema, rows_per_group)
        try:
            yield table_writer
            table_writer.flush()
            writer.close()
            tmp.replace(final)
        except BaseException:
            writer.close()
            tmp.unlink(missing_ok=True)
            raise

    def iter_batches(
        self, name: str, columns: list[str] | None = None, batch_size: int = 2048
    ) -> Iterator[pa.RecordBatch]:
        if not self.exists(name):
            return
        yield from pq.ParquetFile(self.path(name)).iter_batches(
            batch_size=batch_size, columns=columns
        )

    def read_column_set(self, name: str, column: str) -> set[str]:
        values: set[str] = set()
        for batch in self.iter_batches(name, columns=[column], batch_size=65536):
            values.update(batch.column(0).to_pylist())
        return values

    def read_pairs(self, name: str, key: str, value: str) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for batch in self.iter_batches(name, columns=[key, value], batch_size=65536):
            pairs.update(zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True))
        return pairs
