"""The four stages of the knowledge pipeline, as plain functions the Dagster assets call.

documents → chunks → embeddings → vector index, each stage streaming a tenant's Parquet table
into the next and doing only the work that changed: unchanged documents keep their chunks,
cached embeddings are reused, and the index receives only new chunks and deletions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from agent_platform.knowledge.chunking import TokenChunker
from agent_platform.knowledge.documents import SkippedFile, SourceDocument, scan_documents
from agent_platform.knowledge.embedder import Embedder, ProgressCallback
from agent_platform.knowledge.tables import (
    CHUNKS_SCHEMA,
    DOCUMENTS_SCHEMA,
    TenantTables,
    embeddings_schema,
    embeddings_space,
)
from agent_platform.security.pii import configured_detector
from agent_platform.vectorstore.base import ChunkRecord, VectorStore, canonical_metadata


@dataclass(frozen=True)
class DocumentsSummary:
    documents_seen: int
    documents_loaded: int
    documents_added: int
    documents_changed: int
    documents_removed: int
    documents_kept_from_previous: int
    skipped: list[SkippedFile] = field(default_factory=list)


@dataclass(frozen=True)
class ChunksSummary:
    chunks_total: int
    documents_chunked: int
    documents_reused: int


@dataclass(frozen=True)
class EmbeddingsSummary:
    model: str
    space: str
    dimension: int
    chunks_total: int
    chunks_embedded: int
    chunks_reused: int


@dataclass(frozen=True)
class IndexSummary:
    chunks_upserted: int
    chunks_deleted: int
    chunks_total: int
    space: str | None = None
    chunks_reembedded: int = 0


def load_documents(source_dir: Path, tables: TenantTables, max_bytes: int) -> DocumentsSummary:
    """Scan the source directory into the documents table.

    A file that was indexed before and is now unreadable keeps its previous version (with the
    reason recorded), so a bad edit never removes knowledge that was already there.
    """
    previous = tables.read_pairs("documents", "document_id", "content_hash")
    loaded_ids: set[str] = set()
    skipped: list[SkippedFile] = []
    kept: list[str] = []
    added = changed = 0
    with tables.write("documents", DOCUMENTS_SCHEMA, rows_per_group=256) as writer:
        for item in scan_documents(source_dir, max_bytes):
            if isinstance(item, SkippedFile):
                if item.path in previous:
                    kept.append(item.path)
                    skipped.append(SkippedFile(item.path, f"{item.reason}; previous version kept"))
                else:
                    skipped.append(item)
                continue
            doc: SourceDocument = item
            loaded_ids.add(doc.document_id)
            if doc.document_id not in previous:
                added += 1
            elif previous[doc.document_id] != doc.content_hash:
                changed += 1
            writer.write_row(
                {
                    "document_id": doc.document_id,
                    "content_hash": doc.content_hash,
                    "kind": doc.kind,
                    "size_bytes": doc.size_bytes,
                    "text": doc.text,
                }
            )
        if kept:
            keep = set(kept)
            for batch in _previous_rows(tables, "documents", "document_id", keep):
                writer.write_batch(batch)
    removed = len(set(previous) - loaded_ids - set(kept))
    return DocumentsSummary(
        documents_seen=len(loaded_ids) + len(skipped),
        documents_loaded=len(loaded_ids),
        documents_added=added,
        documents_changed=changed,
        documents_removed=removed,
        documents_kept_from_previous=len(kept),
        skipped=skipped,
    )


def _previous_rows(
    tables: TenantTables, name: str, key: str, wanted: set[str]
) -> Iterator[pa.RecordBatch]:
    """Rows of the current version of a table whose `key` is in `wanted` (read before replace).

    A generator: an incremental run copies nearly the whole previous table, so it must pass
    through one record batch at a time rather than be collected.
    """
    import pyarrow.compute as pc

    value_set = pa.array(sorted(wanted), pa.string())
    for batch in tables.iter_batches(name):
        filtered = batch.filter(pc.is_in(batch.column(key), value_set=value_set))
        if filtered.num_rows:
            yield filtered


def chunk_documents(tables: TenantTables, chunker: TokenChunker) -> ChunksSummary:
    """Chunk new and changed documents; copy the chunks of unchanged ones from the last run.

    "Unchanged" means the same extracted text under the same chunking settings (`chunk_key`).
    Each chunk records the PII types found in it (`pii_types`, comma-separated); the index keeps
    them in the metadata of the chunks that hold any, so that policies can act on them.
    """
    detector = configured_detector()
    names = tables.schema("chunks").names if tables.exists("chunks") else []
    has_keys = "chunk_key" in names and "pii_types" in names
    previous_keys = tables.read_pairs("chunks", "document_id", "chunk_key") if has_keys else {}
    chunked = 0
    reusable: set[str] = set()
    # Old chunks are read from the previous file while the new one is written to a temp file.
    with tables.write("chunks", CHUNKS_SCHEMA) as writer:
        for batch in tables.iter_batches("documents", batch_size=256):
            for row in batch.to_pylist():
                key = chunker.chunk_key(row["text"])
                if previous_keys.get(row["document_id"]) == key:
                    reusable.add(row["document_id"])
                    continue
                chunked += 1
                for chunk in chunker.split(row["document_id"], row["text"]):
                    writer.write_row(
                        {
                            "chunk_id": chunk.chunk_id,
                            "document_id": row["document_id"],
                            "document_hash": row["content_hash"],
                            "chunk_key": key,
                            "position": chunk.position,
                            "n_tokens": chunk.n_tokens,
                            "text": chunk.text,
                            "pii_types": ",".join(detector.types(chunk.text)),
                        }
                    )
        if reusable:
            for old in _previous_rows(tables, "chunks", "document_id", reusable):
                writer.write_batch(old)
        writer.flush()
        total = writer.rows_written
    return ChunksSummary(
        chunks_total=total,
        documents_chunked=chunked,
        documents_reused=len(reusable),
    )


def embed_chunks(
    tables: TenantTables,
    embedder: Embedder,
    batch_size: int = 1024,
    progress: ProgressCallback | None = None,
) -> EmbeddingsSummary:
    """Embed every chunk (cache first), writing vectors in the chunk table's row order."""
    total_rows = tables.num_rows("chunks")
    schema = embeddings_schema(embedder.dimension, embedder.model_name, embedder.space)
    embedded = reused = done = 0
    with tables.write("embeddings", schema, rows_per_group=batch_size) as writer:
        for batch in tables.iter_batches("chunks", ["chunk_id", "text"], batch_size=batch_size):
            ids = batch.column("chunk_id").to_pylist()
            texts = batch.column("text").to_pylist()
            offset = done

            def report(done_in_batch: int, _total: int, offset: int = offset) -> None:
                if progress:
                    progress(offset + done_in_batch, total_rows)

            vectors, stats = embedder.embed_texts_with_stats(texts, report)
            embedded += stats.computed
            reused += stats.reused
            done += len(ids)
            writer.write_batch(_embedding_batch(ids, vectors, schema))
            if progress:
                progress(done, total_rows)
    return EmbeddingsSummary(
        model=embedder.model_name,
        space=embedder.space,
        dimension=embedder.dimension,
        chunks_total=done,
        chunks_embedded=embedded,
        chunks_reused=reused,
    )


def _embedding_batch(ids: list[str], vectors: np.ndarray, schema: pa.Schema) -> pa.RecordBatch:
    dim = vectors.shape[1]
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    return pa.RecordBatch.from_arrays(
        [pa.array(ids, pa.string()), pa.FixedSizeListArray.from_arrays(flat, dim)],
        schema=schema,
    )


def iter_chunks_with_vectors(
    tables: TenantTables, batch_size: int = 1024
) -> Iterator[tuple[list[dict[str, Any]], np.ndarray]]:
    """Yield (chunk rows, vectors) batches, chunks and embeddings aligned by row order."""
    chunk_batches = tables.iter_batches("chunks", batch_size=batch_size)
    vector_batches = tables.iter_batches("embeddings", batch_size=batch_size)
    for chunks, vectors in zip(chunk_batches, vector_batches, strict=True):
        ids = chunks.column("chunk_id").to_pylist()
        if ids != vectors.column("chunk_id").to_pylist():
            raise RuntimeError(
                f"tenant {tables.tenant!r}: embeddings are out of step with chunks; "
                "re-materialize the embeddings asset"
            )
        yield chunks.to_pylist(), vectors_to_numpy(vectors.column("vector"))


def vectors_to_numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    dim = column.type.list_size
    vectors: np.ndarray = column.values.to_numpy(zero_copy_only=False)  # pyarrow is untyped
    return vectors.reshape(-1, dim).astype(np.float32)


def sync_index(
    tenant: str, tables: TenantTables, store: VectorStore, batch_size: int = 1024
) -> IndexSummary:
    """Upsert chunks the index lacks, refresh stale metadata, then delete removed chunks.

    A chunk whose text survives an edit of its document keeps its id (the id is derived from the
    document and the text), but its document hash and position change: those get a metadata
    update only, with no new vector in the index.

    The index records the embedding space (model and backend) of its vectors. When the
    embeddings table was made in another space, the index's vectors are deleted and every chunk
    upserted again: one index never holds vectors of two spaces.
    """
    schema = tables.schema("embeddings") if tables.exists("embeddings") else None
    space = embeddings_space(schema) if schema is not None else None
    replaced = _adopt_space(tenant, store, space, _torch_space(schema)) if space else 0
    indexed = store.indexed_metadata(tenant)
    current: set[str] = set()
    upserted = 0
    for rows, vectors in iter_chunks_with_vectors(tables, batch_size):
        records = []
        stale: dict[str, dict[str, str | int]] = {}
        for row, vector in zip(rows, vectors, strict=True):
            current.add(row["chunk_id"])
            metadata = {"document_hash": row["document_hash"], "position": row["position"]}
            if row.get("pii_types"):  # only where found: other chunks' metadata is unchanged
                metadata["pii_types"] = row["pii_types"]
            stored = indexed.get(row["chunk_id"])
            if stored is not None:
                if stored != canonical_metadata(metadata):
                    stale[row["chunk_id"]] = metadata
                continue
            records.append(
                ChunkRecord(
                    chunk_id=row["chunk_id"],
                    document_id=row["document_id"],
                    source=row["document_id"],
                    text=row["text"],
                    vector=vector,
                    metadata=metadata,
                )
            )
        if records:
            upserted += store.upsert(tenant, records)
        if stale:
            upserted += store.update_metadata(tenant, stale)
    gone = indexed.keys() - current
    deleted = store.delete(tenant, gone) if gone else 0
    return IndexSummary(
        chunks_upserted=upserted,
        chunks_deleted=deleted,
        chunks_total=store.count(tenant),
        space=space,
        chunks_reembedded=replaced,
    )


def _torch_space(schema: pa.Schema | None) -> str | None:
    model = (schema.metadata or {}).get(b"model") if schema is not None else None
    return model.decode() if model else None


def _adopt_space(tenant: str, store: VectorStore, space: str, torch_space: str | None) -> int:
    """Make `space` the index's recorded space, dropping vectors of any other; returns how many.

    An index that holds vectors but no recorded space predates backends: its vectors came from
    torch, whose space is the bare model name.
    """
    recorded = store.embedding_space(tenant)
    if recorded == space:
        return 0
    dropped = 0
    if recorded is None and space != torch_space:
        indexed = store.indexed_metadata(tenant)
        dropped = store.delete(tenant, indexed.keys()) if indexed else 0
    return dropped + store.set_embedding_space(tenant, space)
