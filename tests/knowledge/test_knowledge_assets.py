"""End to end on the embedded default: real model, real Dagster runs, real index on disk."""

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from agent_platform.cli.execution import run_tenant_job
from agent_platform.knowledge import quality
from agent_platform.knowledge.service import KnowledgeBase
from agent_platform.knowledge.tables import TenantTables, embeddings_schema
from agent_platform.settings import Settings
from agent_platform.tenants import TenantRegistry
from agent_platform.vectorstore.base import SearchMode

DOCS = {
    "backups.md": "# Backups\n\nThe index is snapshotted every night at two o'clock. "
    "Snapshots older than thirty days are pruned automatically.",
    "routing.md": "# Routing\n\nRequests go to the cheapest model that meets the latency budget. "
    "A circuit breaker opens when the error rate passes five percent.",
    "tenants.txt": "Each tenant has its own documents, chunks, embeddings and vector index.",
    "glossary.html": "<html><body><h1>Glossary</h1><p>RRF means reciprocal rank fusion, "
    "the way hybrid search merges keyword and vector rankings.</p></body></html>",
}


def write_corpus(root: Path, docs: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (root / name).write_text(text)
    return root


def ingest(settings: Settings, tenant: str, source: Path):
    TenantRegistry(settings.tenant_registry_path).register(tenant, source)
    outcome = run_tenant_job(settings, "knowledge_job", tenant)
    assert outcome.success, outcome.failures
    return outcome


def test_full_graph_then_incremental_change(settings: Settings, tmp_path: Path) -> None:
    source = write_corpus(tmp_path / "acme", DOCS)
    first = ingest(settings, "acme", source)
    meta = first.metadata
    assert meta["source_documents"]["documents_loaded"] == 4
    chunks_total = meta["document_chunks"]["chunks_total"]
    assert chunks_total >= 4
    assert meta["embeddings"]["chunks_embedded"] == chunks_total
    assert meta["embeddings"]["model"] == "all-MiniLM-L6-v2"
    assert meta["embeddings"]["dimension"] == 384
    assert meta["vector_index"]["chunks_total"] == chunks_total

    kb = KnowledgeBase(settings)
    try:
        hits = kb.search("acme", "how long are snapshots kept?", k=2, mode=SearchMode.VECTOR)
        assert hits[0].source == "backups.md"
        keyword = kb.search("acme", "reciprocal", k=1, mode=SearchMode.KEYWORD)
        assert keyword[0].source == "glossary.html"
    finally:
        kb.close()

    # Change one document, remove one, break one that was indexed, add junk.
    (source / "routing.md").write_text("# Routing\n\nRequests go to the fastest healthy model.")
    (source / "tenants.txt").unlink()
    (source / "backups.md").write_bytes(b"\x00\x01binary now")
    (source / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    second = ingest(settings, "acme", source).metadata
    skipped = {s["path"]: s["reason"] for s in second["source_documents"]["documents_skipped"]}
    assert "previous version kept" in skipped["backups.md"]
    assert "unsupported" in skipped["photo.jpg"]
    assert second["source_documents"]["documents_changed"] == 1
    assert second["source_documents"]["documents_removed"] == 1
    assert second["document_chunks"]["documents_reused"] == 2  # backups.md and glossary.html
    assert second["embeddings"]["chunks_embedded"] == 1  # only the new text of routing.md
    assert second["vector_index"]["chunks_deleted"] >= 2  # old routing.md and tenants.txt
    kb = KnowledgeBase(settings)
    try:
        sources = {h.source for h in kb.search("acme", "snapshots pruned", k=5)}
        assert "backups.md" in sources  # nothing already indexed was lost
        assert "tenants.txt" not in sources
    finally:
        kb.close()


def test_embedding_cache_is_shared_across_tenants(settings: Settings, tmp_path: Path) -> None:
    docs = dict(list(DOCS.items())[:2])
    ingest(settings, "first", write_corpus(tmp_path / "first", docs))
    # Same texts under another tenant: chunk ids differ by tenant path, vectors come from cache.
    second = ingest(settings, "second", write_corpus(tmp_path / "second", docs)).metadata
    assert second["embeddings"]["chunks_embedded"] == 0
    assert second["embeddings"]["chunks_reused"] == second["document_chunks"]["chunks_total"]


def test_failed_run_keeps_what_was_indexed(settings: Settings, tmp_path: Path) -> None:
    source = write_corpus(tmp_path / "keep", DOCS)
    ingest(settings, "keep", source)
    kb = KnowledgeBase(settings)
    before = kb.store.count("keep")
    kb.close()
    shutil.rmtree(source)  # the source directory disappears: the run fails, the index stays
    outcome = run_tenant_job(settings, "knowledge_job", "keep")
    assert not outcome.success
    assert any("does not exist" in f for f in outcome.failures)
    kb = KnowledgeBase(settings)
    try:
        assert kb.store.count("keep") == before
    finally:
        kb.close()


def test_quality_checks_fail_on_bad_tables(settings: Settings) -> None:
    tables = TenantTables(settings.knowledge_dir, "broken")
    vectors = np.ones((3, 4), dtype=np.float32)
    vectors[1, 0] = np.nan
    schema = embeddings_schema(4, "test-model")
    with tables.write("embeddings", schema) as writer:
        writer.write_batch(
            pa.RecordBatch.from_arrays(
                [
                    pa.array(["a", "b", "c"]),
                    pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), 4),
                ],
                schema=schema,
            )
        )
    outcome = quality.check_embeddings(tables, expected_dimension=384)
    assert not outcome.passed
    assert outcome.metrics["non_finite"] == 1
    assert outcome.metrics["not_unit_norm"] == 2
    assert any("dimension 4, expected 384" in f for f in outcome.failures)


@pytest.mark.parametrize("tenant", ["../escape", "UPPER", ""])
def test_invalid_tenant_is_refused_before_anything_runs(settings: Settings, tenant: str) -> None:
    from agent_platform.tenants import InvalidTenantNameError

    with pytest.raises(InvalidTenantNameError):
        KnowledgeBase(settings).tables(tenant)


def live_ann_file(settings: Settings, tenant: str) -> str:
    """The ANN file the tenant's manifest names: a rebuild swaps in a new one."""
    tenant_dir = settings.index_dir / tenant
    data_dir = tenant_dir / (tenant_dir / "CURRENT").read_text().strip()
    return json.loads((data_dir / "manifest.json").read_text())["ann_file"]


def test_reindex_job_rebuilds_while_a_reader_keeps_searching(
    settings: Settings, tmp_path: Path
) -> None:
    import dagster as dg

    from agent_platform.definitions import build_definitions

    source = write_corpus(tmp_path / "weekly", DOCS)
    ingest(settings, "weekly", source)
    reader = KnowledgeBase(settings)  # long-lived, like the serving runtime
    try:
        query = "how long are snapshots kept?"
        assert reader.search("weekly", query, k=1, mode=SearchMode.VECTOR)[0].source == "backups.md"
        paging = "Who gets paged when the checkout service is down?"
        assert reader.search("weekly", paging, k=1, mode=SearchMode.VECTOR)[0].source != "oncall.md"
        # Another run changes the data before the rebuild: the reader must see the new chunks.
        (source / "oncall.md").write_text(
            "# On call\n\nWhen the checkout service is down, the payments on-call engineer is "
            "paged first, then the incident commander."
        )
        ingest(settings, "weekly", source)
        before = live_ann_file(settings, "weekly")
        # Exactly what the weekly schedule launches: the job with its own config, no overrides.
        job = build_definitions(settings).resolve_job_def("reindex_job")
        result = job.execute_in_process(partition_key="weekly", instance=dg.DagsterInstance.get())
        assert result.success
        (event,) = result.get_asset_materialization_events()
        metadata = event.step_materialization_data.materialization.metadata
        meta = {key: value.value for key, value in metadata.items()}
        assert meta["rebuilt"] is True
        assert meta["chunks_upserted"] == 0 and meta["chunks_deleted"] == 0
        assert live_ann_file(settings, "weekly") != before
        hits = reader.search("weekly", query, k=1, mode=SearchMode.VECTOR)
        assert hits[0].source == "backups.md"
        assert reader.search("weekly", paging, k=1, mode=SearchMode.VECTOR)[0].source == "oncall.md"
        assert reader.search("weekly", "reciprocal", k=1, mode=SearchMode.KEYWORD)[0].source == (
            "glossary.html"
        )
        reader.store.verify("weekly")
    finally:
        reader.close()
