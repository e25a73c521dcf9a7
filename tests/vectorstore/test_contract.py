"""One contract suite for every VectorStore backend (embedded always; Weaviate with WEAVIATE_URL).

Search-quality assertions use real all-MiniLM-L6-v2 embeddings of a small corpus, so "the right
chunk ranks first" means the store works end to end, not that it echoes a planted vector.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from agent_platform.vectorstore.base import (
    SearchMode,
    SnapshotNotFoundError,
    VectorStore,
    VectorStoreError,
    canonical_metadata,
)

T = "acme"


@pytest.fixture
def loaded(store, corpus_records):
    store.upsert(T, corpus_records)
    return store


def ids(hits) -> list[str]:
    return [h.chunk_id for h in hits]


def stored_ids(store, tenant: str = T) -> set[str]:
    return set(store.indexed_metadata(tenant))


def test_protocol_and_counts(loaded, corpus_records) -> None:
    assert isinstance(loaded, VectorStore)
    assert loaded.count(T) == len(corpus_records)
    assert stored_ids(loaded) == {r.chunk_id for r in corpus_records}
    assert loaded.tenants() == [T]
    assert loaded.count("nobody") == 0 and stored_ids(loaded, "nobody") == set()
    stored = {r.chunk_id: canonical_metadata(r.metadata) for r in corpus_records}
    assert loaded.indexed_metadata(T) == stored
    assert loaded.indexed_metadata("nobody") == {}
    loaded.verify(T)


def test_embedding_space_change_empties_the_index(loaded, corpus_records) -> None:
    assert loaded.embedding_space(T) is None  # never recorded: written before spaces existed
    assert loaded.set_embedding_space(T, "all-MiniLM-L6-v2") == 0  # first record keeps vectors
    assert loaded.count(T) == len(corpus_records)
    assert loaded.set_embedding_space(T, "all-MiniLM-L6-v2") == 0
    assert loaded.set_embedding_space(T, "all-MiniLM-L6-v2@onnx") == len(corpus_records)
    assert loaded.embedding_space(T) == "all-MiniLM-L6-v2@onnx" and loaded.count(T) == 0
    assert loaded.embedding_space("nobody") is None


def test_upsert_is_idempotent(loaded, corpus_records) -> None:
    assert loaded.upsert(T, corpus_records) == len(corpus_records)
    assert loaded.count(T) == len(corpus_records)


def test_upsert_replaces_same_id(loaded, corpus_records, embedder) -> None:
    new_text = "Llamas are domesticated South American camelids used as pack animals."
    replaced = dataclasses.replace(
        corpus_records[0], text=new_text, vector=embedder.embed_query(new_text)
    )
    loaded.upsert(T, [replaced])
    assert loaded.count(T) == len(corpus_records)
    q = embedder.embed_query("animals that carry loads in the Andes")
    top = loaded.search(T, query_text="llama", query_vector=q, k=1, mode=SearchMode.VECTOR)
    assert ids(top) == [replaced.chunk_id] and top[0].text == new_text
    assert (
        loaded.search(
            T, query_text="Forgot password", query_vector=None, k=5, mode=SearchMode.KEYWORD
        )
        == []
    )


def test_delete(loaded, corpus_records, embedder) -> None:
    assert loaded.delete(T, ["bio-3", "geo-1", "does-not-exist"]) == 2
    assert loaded.count(T) == len(corpus_records) - 2
    assert "bio-3" not in stored_ids(loaded)
    hits = loaded.search(
        T,
        query_text="zebrafish heart",
        query_vector=embedder.embed_query("zebrafish heart regeneration"),
        k=10,
    )
    assert "bio-3" not in ids(hits)
    assert loaded.delete(T, []) == 0 and loaded.delete("nobody", ["x"]) == 0


def test_update_metadata_keeps_text_and_vector(loaded, corpus_records, embedder) -> None:
    changed = {"faq-1": {"topic": "security", "public": False}, "bio-1": {"topic": "cells"}}
    assert loaded.update_metadata(T, {**changed, "does-not-exist": {"topic": "x"}}) == 2
    stored = loaded.indexed_metadata(T)
    assert stored["faq-1"] == canonical_metadata(changed["faq-1"])
    assert stored["bio-1"] == canonical_metadata(changed["bio-1"])  # the key "public" is gone
    assert stored["faq-2"] == canonical_metadata(corpus_records[1].metadata)
    assert loaded.count(T) == len(corpus_records)
    q = embedder.embed_query("How do I change my login credentials?")
    hits = loaded.search(T, query_text="password", query_vector=q, k=1, mode=SearchMode.VECTOR)
    assert ids(hits) == ["faq-1"] and dict(hits[0].metadata) == changed["faq-1"]
    by_filter = loaded.search(
        T, query_text="x", query_vector=q, k=5, mode="vector", filters={"public": False}
    )
    assert "faq-1" in ids(by_filter) and "bio-1" not in ids(by_filter)
    cells = loaded.search(
        T, query_text="x", query_vector=q, k=5, mode="vector", filters={"topic": "cells"}
    )
    assert ids(cells) == ["bio-1"]
    with pytest.raises(ValueError, match=r"faq-2.*metadata\['when'\].*JSON.*datetime"):
        loaded.update_metadata(T, {"faq-2": {"when": datetime.now(UTC)}})
    assert loaded.indexed_metadata(T)["faq-2"] == canonical_metadata(corpus_records[1].metadata)
    assert loaded.update_metadata("nobody", {"faq-1": {}}) == 0
    loaded.verify(T)


# What LangChain document loaders produce: nested values, dotted keys, None, lists, and keys that
# are also record fields.
LOADER_METADATA = {
    "source": "manual.pdf",
    "page": 3,
    "loc": {"lines": {"from": 10, "to": 24}},
    "pdf.version": "1.7",
    "languages": ["en", "de"],
    "coordinates": {"points": [[0.5, 1.0], [2.0, 3.5]], "system": None},
    "chunk_id": "user-value",
    "score": 0.25,
    "Content-Type": "application/pdf",
}


def test_nested_metadata_round_trips(store, corpus_records, embedder) -> None:
    record = dataclasses.replace(corpus_records[0], metadata=LOADER_METADATA)
    store.upsert(T, [record, corpus_records[1]])
    assert store.get_records(T, [record.chunk_id])[0].metadata == LOADER_METADATA
    assert json.loads(store.indexed_metadata(T)[record.chunk_id]) == LOADER_METADATA
    q = embedder.embed_query("forgot password")
    hit = store.search(T, query_text="password", query_vector=q, k=1)[0]
    assert hit.chunk_id == record.chunk_id and dict(hit.metadata) == LOADER_METADATA
    by_page = store.search(
        T, query_text="x", query_vector=q, k=5, mode="vector", filters={"page": 3}
    )
    assert ids(by_page) == [record.chunk_id]
    (streamed,) = [r for b in store.iter_records(T) for r in b if r.chunk_id == record.chunk_id]
    assert streamed.metadata == LOADER_METADATA
    changed = {**LOADER_METADATA, "loc": {"lines": {"from": 1, "to": 2}}}
    changed.pop("page")
    assert store.update_metadata(T, {record.chunk_id: changed}) == 1
    assert store.get_records(T, [record.chunk_id])[0].metadata == changed
    by_page = store.search(
        T, query_text="x", query_vector=q, k=5, mode="vector", filters={"page": 3}
    )
    assert by_page == []


def test_get_records_in_order_with_vectors(loaded, corpus_records) -> None:
    by_id = {r.chunk_id: r for r in corpus_records}
    asked = ["geo-2", "missing", "faq-1", "geo-2", "ops-3"]
    got = loaded.get_records(T, asked)
    assert [r.chunk_id for r in got] == ["geo-2", "faq-1", "ops-3"]
    for r in got:
        want = by_id[r.chunk_id]
        assert (r.text, r.source, r.document_id) == (want.text, want.source, want.document_id)
        assert dict(r.metadata) == want.metadata
        assert np.allclose(r.vector, want.vector / np.linalg.norm(want.vector), atol=1e-6)
    assert loaded.get_records(T, []) == [] and loaded.get_records("nobody", ["faq-1"]) == []
    with pytest.raises(TypeError, match="not a single string"):
        loaded.get_records(T, "faq-1")


def test_tenant_isolation(loaded, corpus_records, embedder) -> None:
    loaded.upsert("globex", corpus_records[:3])
    assert loaded.count("globex") == 3 and loaded.tenants() == [T, "globex"]
    q = embedder.embed_query("zebrafish heart regeneration")
    hits = loaded.search("globex", query_text="zebrafish", query_vector=q, k=10)
    assert set(ids(hits)) <= {r.chunk_id for r in corpus_records[:3]}
    loaded.drop_tenant("globex")
    assert loaded.tenants() == [T] and loaded.count(T) == len(corpus_records)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("How do I change my login credentials?", "faq-1"),
        ("Which part of a cell generates energy?", "bio-1"),
        ("When did people first walk on the moon?", "hist-3"),
        ("How long does delivery to France take?", "faq-6"),
    ],
)
def test_vector_search_finds_paraphrase(loaded, embedder, query, expected) -> None:
    hits = loaded.search(
        T, query_text=query, query_vector=embedder.embed_query(query), k=3, mode=SearchMode.VECTOR
    )
    assert hits[0].chunk_id == expected


def test_keyword_search_rare_term(loaded) -> None:
    hits = loaded.search(T, query_text="QX-7731", query_vector=None, k=3, mode=SearchMode.KEYWORD)
    assert hits[0].chunk_id == "ops-3"
    assert loaded.search(T, query_text="xylophone", query_vector=None, k=3, mode="keyword") == []


def test_hybrid_combines_both(loaded, embedder) -> None:
    query = "what does error QX-7731 mean"
    hits = loaded.search(T, query_text=query, query_vector=embedder.embed_query(query), k=5)
    assert hits[0].chunk_id == "ops-3"


@pytest.mark.parametrize("mode", list(SearchMode))
def test_scores_in_unit_range_and_sorted(loaded, embedder, mode) -> None:
    query = "coffee and bread recipes"
    hits = loaded.search(
        T, query_text=query, query_vector=embedder.embed_query(query), k=8, mode=mode
    )
    assert hits
    scores = [h.score for h in hits]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)


def test_filters_return_k_matches(loaded, embedder) -> None:
    q = embedder.embed_query("mountains and rivers")
    hits = loaded.search(
        T, query_text="x", query_vector=q, k=4, mode=SearchMode.VECTOR, filters={"topic": "ops"}
    )
    assert len(hits) == 4 and all(h.metadata["topic"] == "ops" for h in hits)
    hits = loaded.search(
        T, query_text="recipes", query_vector=q, k=10, filters={"source": "recipes.md"}
    )
    assert len(hits) == 4 and {h.source for h in hits} == {"recipes.md"}
    hits = loaded.search(
        T,
        query_text="the",
        query_vector=q,
        k=30,
        mode=SearchMode.VECTOR,
        filters={"document_id": "faq", "public": True},
    )
    assert len(hits) == 6 and {h.document_id for h in hits} == {"faq"}
    assert (
        loaded.search(
            T,
            query_text="x",
            query_vector=q,
            k=3,
            mode=SearchMode.VECTOR,
            filters={"topic": "nope"},
        )
        == []
    )


def test_min_score(loaded, embedder) -> None:
    q = embedder.embed_query("Which part of a cell generates energy?")
    hits = loaded.search(
        T, query_text="cell", query_vector=q, k=20, mode=SearchMode.VECTOR, min_score=0.7
    )
    assert hits and all(h.score >= 0.7 for h in hits) and len(hits) < 20
    assert (
        loaded.search(
            T, query_text="cell", query_vector=-q, k=5, mode=SearchMode.VECTOR, min_score=0.9
        )
        == []
    )


def test_exact_and_ann_agree(loaded, embedder) -> None:
    for query in ("password reset", "history of Europe", "cooking rice", "cloud operations"):
        q = embedder.embed_query(query)
        ann = loaded.search(T, query_text=query, query_vector=q, k=5, mode=SearchMode.VECTOR)
        exact = loaded.exact_search(T, q, k=5)
        assert ids(ann) == ids(exact)
        assert [h.score for h in ann] == pytest.approx([h.score for h in exact], abs=1e-4)


def test_iter_records_streams_batches(loaded, corpus_records) -> None:
    batches = list(loaded.iter_records(T, batch_size=5))
    assert all(len(b) <= 5 for b in batches)
    got = {r.chunk_id: r for b in batches for r in b}
    assert set(got) == {r.chunk_id for r in corpus_records}
    first = corpus_records[0]
    np.testing.assert_allclose(got[first.chunk_id].vector, first.vector, atol=1e-5)
    assert dict(got[first.chunk_id].metadata) == dict(first.metadata)


def test_backup_restore_round_trip(loaded, corpus_records, snapshots_dir) -> None:
    info = loaded.backup(T, snapshots_dir)
    assert info.chunk_count == len(corpus_records) and info.tenant == T
    assert len(info.snapshot_id) >= 16 and info.snapshot_id[8] == "T"
    loaded.delete(T, ["faq-1", "faq-2"])
    loaded.upsert(T, [dataclasses.replace(corpus_records[3], chunk_id="new-1")])
    restored = loaded.restore(T, snapshots_dir, info.snapshot_id)
    assert restored.snapshot_id == info.snapshot_id
    assert stored_ids(loaded) == {r.chunk_id for r in corpus_records}
    assert [s.snapshot_id for s in loaded.list_snapshots(T, snapshots_dir)] == [info.snapshot_id]
    hits = loaded.search(T, query_text="Forgot password", query_vector=None, k=1, mode="keyword")
    assert ids(hits) == ["faq-1"]
    loaded.verify(T)


def test_sealed_snapshot_holds_no_text_and_restores_only_with_its_key(
    loaded, corpus_records, snapshots_dir, tmp_path
) -> None:
    from agent_platform.security.crypto import PLAINTEXT, FieldCipher
    from agent_platform.security.crypto.kek import LocalKeyFile
    from agent_platform.security.crypto.keyring import KeyRing
    from agent_platform.security.crypto.keystore import SQLiteDataKeyStore

    def ring(name: str) -> FieldCipher:
        kek = LocalKeyFile(tmp_path / name / "kek.json", create=True)
        return FieldCipher(KeyRing(kek, SQLiteDataKeyStore(tmp_path / name / "keys.sqlite")))

    cipher = ring("keys")
    info = loaded.backup(T, snapshots_dir, cipher)
    stored = b"".join(p.read_bytes() for p in Path(info.location).iterdir())
    for record in corpus_records:  # neither the text nor its keyword index's words
        assert record.text.encode() not in stored
    assert b"mitochondrion" not in stored.lower() and b"zebrafish" not in stored.lower()
    loaded.delete(T, ["faq-1"])
    for wrong in (PLAINTEXT, ring("other-keys")):
        with pytest.raises(VectorStoreError, match="failed verification"):
            loaded.restore(T, snapshots_dir, info.snapshot_id, wrong)
        assert loaded.count(T) == len(corpus_records) - 1  # the live index is untouched
    loaded.restore(T, snapshots_dir, info.snapshot_id, cipher)
    hits = loaded.search(T, query_text="Forgot password", query_vector=None, k=1, mode="keyword")
    assert ids(hits) == ["faq-1"] and hits[0].text == corpus_records[0].text
    loaded.verify(T)


def test_bad_snapshot_is_refused(loaded, corpus_records, snapshots_dir) -> None:
    info = loaded.backup(T, snapshots_dir)
    manifest = json.loads((Path(info.location) / "manifest.json").read_text())
    victim = Path(info.location) / sorted(manifest["files"])[0]
    with victim.open("r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00garbage\x00" * 10)
    loaded.delete(T, ["faq-1"])
    with pytest.raises(VectorStoreError, match="failed verification"):
        loaded.restore(T, snapshots_dir, info.snapshot_id)
    assert loaded.count(T) == len(corpus_records) - 1
    with pytest.raises(SnapshotNotFoundError, match="no snapshot"):
        loaded.restore(T, snapshots_dir, "20000101T000000Z")


def test_prune_snapshots_by_retention(loaded, snapshots_dir) -> None:
    snaps = [loaded.backup(T, snapshots_dir) for _ in range(3)]
    for info, age_days in zip(snaps, (40, 35, 1), strict=True):
        path = Path(info.location) / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest["created_at"] = (datetime.now(UTC) - timedelta(days=age_days)).isoformat()
        path.write_text(json.dumps(manifest))
    removed = loaded.prune_snapshots(T, snapshots_dir, retention_days=30)
    assert sorted(removed) == sorted(s.snapshot_id for s in snaps[:2])
    assert [s.snapshot_id for s in loaded.list_snapshots(T, snapshots_dir)] == [
        snaps[2].snapshot_id
    ]
    # The newest snapshot is kept even when it is older than the retention.
    assert loaded.prune_snapshots(T, snapshots_dir, retention_days=0) == []


def test_bad_input_is_rejected_and_nothing_is_lost(loaded, corpus_records, embedder) -> None:
    good = dataclasses.replace(corpus_records[0], chunk_id="good-new")
    wrong_dim = dataclasses.replace(corpus_records[1], chunk_id="bad-dim", vector=np.ones(10))
    with pytest.raises(ValueError, match=r"bad-dim.*dimension 10.*384"):
        loaded.upsert(T, [good, wrong_dim])
    nan = dataclasses.replace(corpus_records[1], vector=np.full(384, np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match=r"faq-2.*NaN"):
        loaded.upsert(T, [nan])
    assert loaded.count(T) == len(corpus_records) and "good-new" not in stored_ids(loaded)
    q = embedder.embed_query("password")
    with pytest.raises(ValueError, match="query_text is empty"):
        loaded.search(T, query_text="  ", query_vector=q, k=3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        loaded.search(T, query_text="password", query_vector=q, k=0)
    with pytest.raises(ValueError, match=r"query_vector.*dimension 3"):
        loaded.search(T, query_text="password", query_vector=np.ones(3), k=3, mode="vector")
    with pytest.raises(ValueError, match="min_score"):
        loaded.search(T, query_text="password", query_vector=q, k=3, min_score=2.0)
    with pytest.raises(ValueError, match="tenant"):
        loaded.upsert("../etc", corpus_records[:1])
    with pytest.raises(ValueError, match="metadata key 1 must be a non-empty string"):
        loaded.upsert(T, [dataclasses.replace(corpus_records[0], metadata={1: "x"})])
    with pytest.raises(ValueError, match=r"metadata\['loc'\]\['lines'\] is not finite"):
        bad = {"loc": {"lines": float("nan")}}
        loaded.upsert(T, [dataclasses.replace(corpus_records[0], metadata=bad)])
    with pytest.raises(ValueError, match=r"filter key 'loc.page' cannot be filtered on"):
        loaded.search(T, query_text="x", query_vector=q, k=1, filters={"loc.page": 1})
    assert loaded.count(T) == len(corpus_records)
    hits = loaded.search(T, query_text="password", query_vector=q, k=1, mode="vector")
    assert ids(hits) == ["faq-1"]
