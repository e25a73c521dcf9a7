"""The knowledge asset checks: each fails on bad input, and a failing blocking check stops the run.

Bad input is built as data (a table with bad rows, an index with a missing chunk, an ANN built
with crippled HNSW settings); the checks and assets themselves run unchanged.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest

from agent_platform.knowledge import quality
from agent_platform.knowledge.tables import (
    CHUNKS_SCHEMA,
    DOCUMENTS_SCHEMA,
    TenantTables,
    embeddings_schema,
)
from agent_platform.settings import Settings
from agent_platform.vectorstore.base import ChunkRecord
from agent_platform.vectorstore.embedded import EmbeddedVectorStore
from agent_platform.vectorstore.embedded_ann import AnnParams
from assets.knowledge import document_chunks, embeddings, index_snapshot, vector_index

HASH = "ab" * 32


def chunk_row(chunk_id: str, **overrides) -> dict:
    row = {
        "chunk_id": chunk_id,
        "document_id": "a.md",
        "document_hash": HASH,
        "chunk_key": HASH,
        "position": 0,
        "n_tokens": 5,
        "text": "hello world",
    }
    return {**row, **overrides}


def write_rows(tables: TenantTables, name: str, schema: pa.Schema, rows: list[dict]) -> None:
    with tables.write(name, schema) as writer:
        writer.write_batch(pa.Table.from_pylist(rows, schema=schema))


def write_vectors(tables: TenantTables, ids: list[str], vectors: np.ndarray) -> None:
    schema = embeddings_schema(vectors.shape[1], "test-model")
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    with tables.write("embeddings", schema) as writer:
        writer.write_batch(
            pa.RecordBatch.from_arrays(
                [pa.array(ids), pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])],
                schema=schema,
            )
        )


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_chunk_schema_reports_each_bad_row(tmp_path: Path) -> None:
    tables = TenantTables(tmp_path, "acme")
    good = "0" * 32
    write_rows(
        tables,
        "chunks",
        CHUNKS_SCHEMA,
        [
            chunk_row(good),
            chunk_row(good, position=1),  # the same id twice
            chunk_row("not-a-chunk-id"),
            chunk_row("1" * 32, text="", n_tokens=0),
            chunk_row("2" * 32, n_tokens=999),
        ],
    )
    outcome = quality.check_chunk_schema(tables, max_tokens=254)
    assert not outcome.passed
    assert outcome.metrics["rows"] == 5
    text = "\n".join(outcome.failures)
    assert "chunk_id: field_uniqueness" in text
    assert "chunk_id: str_matches" in text and "not-a-chunk-id" in text
    assert "n_tokens: greater_than_or_equal_to(1)" in text
    assert "text: str_length" in text
    assert f"chunk {'2' * 32} has 999 tokens (limit 254)" in text
    write_rows(tables, "chunks", CHUNKS_SCHEMA, [chunk_row(good)])
    assert quality.check_chunk_schema(tables, max_tokens=254).passed


def test_index_count_fails_when_the_index_lacks_a_chunk(tmp_path: Path) -> None:
    tables = TenantTables(tmp_path / "knowledge", "acme")
    ids = ["0" * 32, "1" * 32, "2" * 32]
    write_rows(tables, "chunks", CHUNKS_SCHEMA, [chunk_row(i) for i in ids])
    store = EmbeddedVectorStore(tmp_path / "index")
    try:
        vectors = unit_vectors(3, 8)
        store.upsert(
            "acme",
            [ChunkRecord(i, "a.md", "a.md", "t", v, {}) for i, v in zip(ids, vectors, strict=True)],
        )
        assert quality.check_index_count(store, "acme", tables).passed
        store.delete("acme", [ids[1]])
        outcome = quality.check_index_count(store, "acme", tables)
        assert not outcome.passed
        assert outcome.metrics == {"indexed": 2, "chunks": 3}
    finally:
        store.close()


def test_ann_recall_fails_on_a_crippled_hnsw_graph(tmp_path: Path) -> None:
    tables = TenantTables(tmp_path / "knowledge", "acme")
    vectors = unit_vectors(1000, 16)
    ids = [f"c{i}" for i in range(len(vectors))]
    write_vectors(tables, ids, vectors)
    records = [ChunkRecord(i, "d", "s", "t", v, {}) for i, v in zip(ids, vectors, strict=True)]
    recalls = {}
    for name, params in {
        "default": AnnParams(),
        "crippled": AnnParams(m=2, ef_construction=2, ef_search=1),
    }.items():
        store = EmbeddedVectorStore(tmp_path / name, params=params)
        try:
            store.upsert("acme", records)
            recalls[name] = quality.check_ann_recall(store, "acme", tables, sample_size=50)
        finally:
            store.close()
    assert recalls["default"].passed, recalls["default"].summary
    crippled = recalls["crippled"]
    assert not crippled.passed
    assert crippled.metrics["recall_at_k"] < quality.MIN_ANN_RECALL
    assert crippled.metrics["sample"] == 50


# --- blocking checks in real Dagster runs ---------------------------------------------------


@pytest.fixture
def run_knowledge(settings: Settings):
    """Materialize some knowledge assets, with the checks on them, for one tenant."""
    from agent_platform.definitions import build_resources
    from assets.knowledge_checks import knowledge_checks

    resources = {
        key: value
        for key, value in build_resources(settings).items()
        if key in ("embedder", "knowledge", "vector_store", "key_ring")
    }

    def run(tenant: str, assets: list[dg.AssetsDefinition]) -> dg.ExecuteInProcessResult:
        keys = {key for asset in assets for key in asset.keys}
        checks = [c for c in knowledge_checks if {k.asset_key for k in c.check_keys} <= keys]
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("tenants", [tenant])
            return dg.materialize(
                [*assets, *checks],
                resources=resources,
                partition_key=tenant,
                instance=instance,
                raise_on_error=False,
            )

    return run


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {
        event.step_materialization_data.materialization.asset_key.to_user_string()
        for event in result.get_asset_materialization_events()
    }


def failed_checks(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}


def test_failing_chunk_schema_stops_embedding_and_indexing(
    settings: Settings, run_knowledge, embedder
) -> None:
    tenant = "badhash"
    # Documents whose content hash is not a SHA-256 (a table from a foreign writer): the real
    # chunking asset copies it into every chunk, and the schema check must stop the run there.
    tables = TenantTables(settings.knowledge_dir, tenant)
    document = {"document_id": "a.md", "kind": "md", "size_bytes": 40}
    text = "The index is snapshotted every night."
    write_rows(
        tables, "documents", DOCUMENTS_SCHEMA, [{**document, "content_hash": "oops", "text": text}]
    )
    # What the tenant already had indexed must survive the failed run.
    store = EmbeddedVectorStore(settings.index_dir)
    store.upsert(
        tenant, [ChunkRecord("old", "old.md", "old.md", "old", embedder.embed_query("old"), {})]
    )
    store.close()

    result = run_knowledge(tenant, [document_chunks, embeddings, vector_index])
    assert not result.success
    assert failed_checks(result) == {"chunk_schema"}
    assert materialized(result) == {"document_chunks"}  # nothing downstream of the check ran
    assert not tables.exists("embeddings")
    store = EmbeddedVectorStore(settings.index_dir)
    try:
        assert set(store.indexed_metadata(tenant)) == {"old"}
    finally:
        store.close()


def test_failing_index_count_stops_the_snapshot(settings: Settings, run_knowledge) -> None:
    tenant = "dupes"
    # A chunk table that lists one chunk twice: the index keeps one copy, so it holds fewer
    # chunks than the table, and the count check must keep that index from being snapshotted.
    tables = TenantTables(settings.knowledge_dir, tenant)
    rows = [chunk_row("0" * 32), chunk_row("1" * 32, text="snapshots are pruned")]
    write_rows(tables, "chunks", CHUNKS_SCHEMA, [*rows, rows[1]])
    result = run_knowledge(tenant, [embeddings, vector_index, index_snapshot])
    assert not result.success
    assert "index_count_matches_chunks" in failed_checks(result)
    assert materialized(result) == {"embeddings", "vector_index"}
    store = EmbeddedVectorStore(settings.index_dir)
    try:
        assert store.count(tenant) == 2
        assert store.list_snapshots(tenant, settings.snapshots_dir) == []
    finally:
        store.close()
