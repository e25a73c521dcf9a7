"""Two processes on one embedded index: a rebuild or a write in one is seen safely by the other.

The Dagster run that rebuilds or updates a tenant's index is a different process from the serving
runtime that searches it, so these tests run the writer in a real subprocess.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from agent_platform.vectorstore.base import ChunkRecord, SearchMode
from agent_platform.vectorstore.embedded import EmbeddedVectorStore

T = "acme"
DIM = 32


def records(n: int, seed: int = 0, prefix: str = "c") -> list[ChunkRecord]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return [
        ChunkRecord(f"{prefix}{i}", f"d{i % 20}", f"s{i % 3}", f"chunk {i}", vectors[i], {})
        for i in range(n)
    ]


def writer_process(index: Path, body: str) -> subprocess.Popen:
    """A separate Python process with its own store on `index`; `body` uses `store`, `records`."""
    code = (
        textwrap.dedent(
            f"""
            from pathlib import Path
            import numpy as np
            from agent_platform.vectorstore.base import ChunkRecord
            from agent_platform.vectorstore.embedded import EmbeddedVectorStore
            DIM = {DIM}
            store = EmbeddedVectorStore(Path({str(index)!r}))
            """
        )
        + inspect.getsource(records)
        + textwrap.dedent(body)
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def top_id(store: EmbeddedVectorStore, vector: np.ndarray) -> str | None:
    hits = store.search(T, query_text="x", query_vector=vector, k=3, mode=SearchMode.VECTOR)
    return hits[0].chunk_id if hits else None


def vector_ids(store: EmbeddedVectorStore, vector: np.ndarray, k: int) -> list[str]:
    hits = store.search(T, query_text="x", query_vector=vector, k=k, mode=SearchMode.VECTOR)
    return [h.chunk_id for h in hits]


def test_rebuilds_in_another_process_never_fail_a_search(tmp_path: Path) -> None:
    index = tmp_path / "index"
    data = records(300)
    rebuilds = 20
    added = records(rebuilds, seed=1, prefix="new")  # the writer builds the same records
    store = EmbeddedVectorStore(index)
    store.upsert(T, data)
    store.flush(T)
    long_lived = store  # keeps its loaded tenant for the whole test
    proc = writer_process(
        index,
        f"""
        for i, record in enumerate(records({rebuilds}, seed=1, prefix="new")):
            store.upsert({T!r}, [record])
            assert store.rebuild({T!r}) == {len(data)} + i + 1
        store.close()
        print("rebuilt")
        """,
    )
    opened = searched = 0
    errors: list[str] = []
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        fresh = EmbeddedVectorStore(index)  # opens the tenant from disk, racing the swaps
        try:
            if top_id(fresh, data[7].vector) != "c7":
                errors.append("fresh store: wrong top hit")
            opened += 1
        except Exception as exc:  # every failure is reported below
            errors.append(f"fresh store: {type(exc).__name__}: {exc}")
        finally:
            fresh.close()
        try:
            if top_id(long_lived, data[11].vector) != "c11":
                errors.append("long-lived store: wrong top hit")
            searched += 1
        except Exception as exc:
            errors.append(f"long-lived store: {type(exc).__name__}: {exc}")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == "rebuilt", err[-2000:]
    assert not errors, errors[:5]
    assert opened > 0 and searched > 0
    # The long-lived store sees every record the other process added, by vector.
    assert [top_id(long_lived, r.vector) for r in added] == [r.chunk_id for r in added]
    everything = vector_ids(long_lived, data[0].vector, k=len(data) + rebuilds)
    assert sorted(everything) == sorted(r.chunk_id for r in data + added)
    long_lived.verify(T)
    long_lived.close()


def test_long_lived_store_sees_writes_of_another_process(tmp_path: Path) -> None:
    index = tmp_path / "index"
    data = records(300)
    added = records(5, seed=1, prefix="new")  # the writer builds the same records
    store = EmbeddedVectorStore(index)
    store.upsert(T, data)
    assert top_id(store, data[7].vector) == "c7"  # the tenant is now loaded and cached
    proc = writer_process(
        index,
        f"""
        store.upsert({T!r}, records(5, seed=1, prefix="new"))
        store.delete({T!r}, [f"c{{i}}" for i in range(200)])
        store.close()  # saves the ANN, which purges the tombstones of the deletes
        """,
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert top_id(store, added[3].vector) == "new3"
    assert top_id(store, data[7].vector) != "c7"
    # A store that kept its old ANN would still hold the 200 deleted vectors: its hits would
    # be mostly dropped ones, so it could not fill k.
    survivors = sorted(r.chunk_id for r in data[200:] + added)
    assert sorted(vector_ids(store, data[7].vector, k=len(survivors))) == survivors
    assert len(vector_ids(store, data[250].vector, k=10)) == 10
    store.verify(T)
    store.close()


def test_two_writer_processes_leave_a_consistent_index(tmp_path: Path) -> None:
    """An ingest and a reindex overlapping: writes, saves and rebuilds of both interleave."""
    index = tmp_path / "index"
    store = EmbeddedVectorStore(index)
    store.upsert(T, records(100))
    rounds, batch = 8, 30
    writers = [
        writer_process(
            index,
            f"""
            for i in range({rounds}):
                store.upsert({T!r}, records({batch}, seed={seed} + i, prefix=f"{name}{{i}}-"))
                store.upsert({T!r}, records(10, seed={seed} + 100 + i))  # replaces c0..c9
                if i:
                    store.delete({T!r}, [f"{name}{{i - 1}}-{{j}}" for j in range(10)])
                store.rebuild({T!r}) if i % 3 == 2 else store.flush({T!r})
            store.close()
            print("done")
            """,
        )
        for name, seed in (("a", 10), ("b", 50))
    ]
    errors: list[str] = []
    while any(w.poll() is None for w in writers):
        try:
            if len(vector_ids(store, records(1, seed=3)[0].vector, k=20)) != 20:
                errors.append("a search could not fill k")
        except Exception as exc:  # reported below
            errors.append(f"{type(exc).__name__}: {exc}")
    for w in writers:
        out, err = w.communicate(timeout=60)
        assert w.returncode == 0 and out.strip() == "done", err[-2000:]
    assert not errors, errors[:5]
    expected = 100 + 2 * (rounds * batch - (rounds - 1) * 10)
    fresh = EmbeddedVectorStore(index)
    fresh.verify(T)
    assert fresh.count(T) == expected
    last = records(batch, seed=10 + rounds - 1, prefix=f"a{rounds - 1}-")
    assert top_id(fresh, last[5].vector) == last[5].chunk_id
    assert len(vector_ids(fresh, last[5].vector, k=expected)) == expected
    fresh.close()
    store.verify(T)
    assert len(vector_ids(store, last[5].vector, k=expected)) == expected
    store.close()
