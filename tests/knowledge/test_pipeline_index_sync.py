"""Index sync on the real pipeline functions: stale metadata of surviving chunks is refreshed."""

from __future__ import annotations

import json
from pathlib import Path

from agent_platform.knowledge import pipeline
from agent_platform.knowledge.chunking import chunker_for
from agent_platform.knowledge.tables import TenantTables
from agent_platform.vectorstore.embedded import EmbeddedVectorStore

T = "acme"
# Each paragraph (14-19 tokens) is one chunk at 24 tokens (two do not fit together), so inserting
# a paragraph keeps the others' text, and so their ids, while their positions and document hash
# change.
P0 = "Incidents are reviewed every Monday by the reliability team and the service owners."
P1 = "Backups run nightly at two o'clock and every snapshot is kept for thirty days."
P2 = "The circuit breaker opens when the error rate of a model passes five percent."


def build(source: Path, tables: TenantTables, store: EmbeddedVectorStore, chunker, embedder):
    pipeline.load_documents(source, tables, max_bytes=1_000_000)
    pipeline.chunk_documents(tables, chunker)
    pipeline.embed_chunks(tables, embedder)
    return pipeline.sync_index(T, tables, store)


def chunk_metadata(store: EmbeddedVectorStore) -> dict[str, dict]:
    return {cid: json.loads(meta) for cid, meta in store.indexed_metadata(T).items()}


def test_surviving_chunks_get_their_new_position_and_document_hash(
    tmp_path: Path, embedder
) -> None:
    source = tmp_path / "docs"
    source.mkdir()
    doc = source / "ops.md"
    doc.write_text(f"{P1}\n\n{P2}\n")
    tables = TenantTables(tmp_path / "knowledge", T)
    store = EmbeddedVectorStore(tmp_path / "index")
    chunker = chunker_for(embedder, 24, 4)
    try:
        first = build(source, tables, store, chunker, embedder)
        assert first.chunks_upserted == 2
        before = chunk_metadata(store)
        doc.write_text(f"{P0}\n\n{P1}\n\n{P2}\n")
        second = build(source, tables, store, chunker, embedder)
        after = chunk_metadata(store)
        assert set(before) < set(after)  # the surviving chunks kept their ids
        new_hash = tables.read_pairs("documents", "document_id", "content_hash")["ops.md"]
        assert all(m["document_hash"] == new_hash for m in after.values())
        assert sorted(m["position"] for m in after.values()) == [0, 1, 2]
        for chunk_id, old in before.items():
            assert after[chunk_id]["position"] == old["position"] + 1
        assert (second.chunks_upserted, second.chunks_deleted) == (3, 0)
        # The survivors got a metadata update, not a new vector: the ANN has no tombstone.
        assert store._tenants[T].ann.tombstones == 0 and store._tenants[T].ann.live == 3
        # Nothing changed: nothing is rewritten.
        third = pipeline.sync_index(T, tables, store)
        assert (third.chunks_upserted, third.chunks_deleted, third.chunks_total) == (0, 0, 3)
    finally:
        store.close()
