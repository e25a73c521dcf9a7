"""Embedded-only behaviour: corruption detection, rebuild under load, incremental ANN, filters."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from agent_platform.vectorstore.base import ChunkRecord, IndexCorruptedError, SearchMode
from agent_platform.vectorstore.embedded import EmbeddedVectorStore
from agent_platform.vectorstore.embedded_ann import AnnParams
from agent_platform.vectorstore.factory import open_vector_store

T = "acme"


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "index", tmp_path / "snapshots"


def random_records(n: int, dim: int = 32, seed: int = 0) -> list[ChunkRecord]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return [
        ChunkRecord(
            f"c{i}",
            f"d{i % 50}",
            f"s{i % 3}",
            f"chunk {i} word{i % 13}",
            vectors[i],
            {"bucket": i % 10, "even": i % 2 == 0},
        )
        for i in range(n)
    ]


def data_file(root: Path, pattern: str) -> Path:
    (found,) = list((root / T).rglob(pattern))
    return found


def test_factory_opens_embedded(settings) -> None:
    store = open_vector_store(settings)
    assert isinstance(store, EmbeddedVectorStore) and store.root == settings.index_dir
    store.close()


def test_truncated_index_file_names_rebuild_command(paths, corpus_records) -> None:
    index, snaps = paths
    store = EmbeddedVectorStore(index, snapshots_dir=snaps)
    store.upsert(T, corpus_records)
    snapshot = store.backup(T, snaps)
    store.close()
    ann = data_file(index, "ann-*.bin")
    with ann.open("r+b") as fh:
        fh.truncate(ann.stat().st_size // 2)
    expected = f"records database is intact; .* agent-platform index rebuild --tenant {T}$"
    fresh = EmbeddedVectorStore(index, snapshots_dir=snaps)
    with pytest.raises(IndexCorruptedError, match=expected):
        fresh.search(T, query_text="x", query_vector=corpus_records[0].vector, k=3, mode="vector")
    with pytest.raises(IndexCorruptedError, match=expected):
        fresh.verify(T)
    assert fresh.rebuild(T) == len(corpus_records)  # the records survive: rebuild repairs
    fresh.verify(T)
    fresh.restore(T, snaps, snapshot.snapshot_id)
    fresh.verify(T)
    assert fresh.count(T) == len(corpus_records)
    fresh.close()


def test_missing_index_file_is_detected(paths, corpus_records) -> None:
    index, snaps = paths
    store = EmbeddedVectorStore(index, snapshots_dir=snaps)
    store.upsert(T, corpus_records)
    store.flush(T)
    data_file(index, "ann-*.bin").unlink()
    with pytest.raises(IndexCorruptedError, match="missing"):
        store.verify(T)
    store.close()


def test_garbage_sqlite_without_snapshot_names_ingest(paths, corpus_records) -> None:
    index, snaps = paths
    store = EmbeddedVectorStore(index, snapshots_dir=snaps)
    store.upsert(T, corpus_records)
    store.close()
    db = data_file(index, "records.sqlite")
    with db.open("r+b") as fh:
        fh.write(b"this is not a database" * 50)
    fresh = EmbeddedVectorStore(index, snapshots_dir=snaps)
    with pytest.raises(
        IndexCorruptedError, match=f"agent-platform ingest <source-dir> --tenant {T}"
    ):
        fresh.count(T)
    with pytest.raises(IndexCorruptedError):
        fresh.search(T, query_text="password", query_vector=None, k=3, mode="keyword")
    fresh.close()


def test_corrupted_pages_found_by_verify(paths) -> None:
    index, snaps = paths
    store = EmbeddedVectorStore(index, snapshots_dir=snaps)
    store.upsert(T, random_records(3000, dim=64))
    store.close()
    db = data_file(index, "records.sqlite")
    with db.open("r+b") as fh:  # keep the header, smash pages in the middle
        fh.seek(db.stat().st_size // 2)
        fh.write(b"\xff" * 20000)
    fresh = EmbeddedVectorStore(index, snapshots_dir=snaps)
    with pytest.raises(IndexCorruptedError, match="agent-platform"):
        fresh.verify(T)
    fresh.close()


def test_rebuild_while_searching(paths) -> None:
    index, snaps = paths
    records = random_records(3000)
    store = EmbeddedVectorStore(index, snapshots_dir=snaps)
    store.upsert(T, records)
    errors: list[BaseException] = []
    done = threading.Event()
    searches = 0

    def reader() -> None:
        nonlocal searches
        try:
            while not done.is_set():
                hits = store.search(T, query_text="word3", query_vector=records[7].vector, k=5)
                assert hits and hits[0].chunk_id == "c7"
                searches += 1
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(3):
        assert store.rebuild(T) == len(records)
    done.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert searches > 0
    store.verify(T)
    store.close()


def test_incremental_upsert_is_replayed_after_reopen(paths) -> None:
    index, snaps = paths
    records = random_records(500)
    store = EmbeddedVectorStore(index, snapshots_dir=snaps)
    store.upsert(T, records[:400])
    store.flush(T)
    ann_before = data_file(index, "ann-*.bin")
    store.upsert(T, records[400:])  # small write: ANN updated in memory, file not rewritten
    store.delete(T, ["c0"])
    assert data_file(index, "ann-*.bin") == ann_before
    assert (
        store.search(T, query_text="x", query_vector=records[450].vector, k=1, mode="vector")[
            0
        ].chunk_id
        == "c450"
    )
    del store  # no close(): unsaved ANN changes must come back from SQLite
    fresh = EmbeddedVectorStore(index, snapshots_dir=snaps)
    assert fresh.count(T) == 499
    assert (
        fresh.search(T, query_text="x", query_vector=records[450].vector, k=1, mode="vector")[
            0
        ].chunk_id
        == "c450"
    )
    assert "c0" not in [
        h.chunk_id
        for h in fresh.search(T, query_text="x", query_vector=records[0].vector, k=5, mode="vector")
    ]
    fresh.verify(T)
    fresh.close()


def test_filtered_ann_returns_k_from_a_large_subset(paths) -> None:
    index, snaps = paths
    records = random_records(2000)
    # A subset larger than exact_filter_max goes through the filtered ANN path.
    store = EmbeddedVectorStore(index, snapshots_dir=snaps, params=AnnParams(exact_filter_max=10))
    store.upsert(T, records)
    query = records[5].vector
    hits = store.search(
        T, query_text="x", query_vector=query, k=20, mode=SearchMode.VECTOR, filters={"bucket": 3}
    )
    assert len(hits) == 20 and all(h.metadata["bucket"] == 3 for h in hits)
    wanted = [r for r in records if r.metadata["bucket"] == 3]
    sims = np.stack([r.vector / np.linalg.norm(r.vector) for r in wanted]) @ (
        query / np.linalg.norm(query)
    )
    exact = {wanted[i].chunk_id for i in np.argsort(-sims)[:20]}
    assert len(exact & {h.chunk_id for h in hits}) >= 18
    store.close()


def test_concurrent_writer_and_readers(paths) -> None:
    index, snaps = paths
    records = random_records(2400)
    store = EmbeddedVectorStore(index, snapshots_dir=snaps)
    store.upsert(T, records[:400])
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                store.search(T, query_text="word5", query_vector=records[1].vector, k=5)
                store.count(T)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for start in range(400, 2400, 400):
        store.upsert(T, records[start : start + 400])
    done.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert store.count(T) == 2400
    store.verify(T)
    store.close()
