"""Two processes on one embedded index: a rebuild or a write in one is seen safely by the other.

The Dagster run that rebuilds or updates a tenant's index is a different process from the serving
runtime that searches it, so these tests run the writer in a real subprocess.
"""

from __future__ import annotations

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
    """A separate Python process with its own store on `index`; `body` uses `store`."""
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from agent_platform.vectorstore.embedded import EmbeddedVectorStore
        store = EmbeddedVectorStore(Path({str(index)!r}))
        """
    ) + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def top_id(store: EmbeddedVectorStore, vector: np.ndarray) -> str | None:
    hits = store.search(T, query_text="x", query_vector=vector, k=3, mode=SearchMode.VECTOR)
    return hits[0].chunk_id if hits else None


def test_rebuilds_in_another_process_never_fail_a_search(tmp_path: Path) -> None:
    index = tmp_path / "index"
    data = records(300)
    store = EmbeddedVectorStore(index)
    store.upsert(T, data)
    store.flush(T)
    long_lived = store  # keeps its loaded tenant for the whole test
    rebuilds = 30
    proc = writer_process(
        index,
        f"""
        for _ in range({rebuilds}):
            assert store.rebuild({T!r}) == {len(data)}
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
    long_lived.verify(T)
    long_lived.close()


def test_long_lived_store_sees_writes_of_another_process(tmp_path: Path) -> None:
    index = tmp_path / "index"
    data = records(300)
    added = records(5, seed=1, prefix="new")  # same vectors as the writer's
    store = EmbeddedVectorStore(index)
    store.upsert(T, data)
    assert top_id(store, data[7].vector) == "c7"  # the tenant is now loaded and cached
    proc = writer_process(
        index,
        f"""
        import numpy as np
        from agent_platform.vectorstore.base import ChunkRecord
        vectors = np.random.default_rng(1).standard_normal((5, {DIM})).astype(np.float32)
        new = [ChunkRecord(f"new{{i}}", "d", "s", "new", v, {{}}) for i, v in enumerate(vectors)]
        store.upsert({T!r}, new)
        store.delete({T!r}, ["c7"])
        store.close()
        """,
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert top_id(store, added[3].vector) == "new3"
    assert top_id(store, data[7].vector) != "c7"
    assert store.count(T) == 304
    store.verify(T)
    store.close()
