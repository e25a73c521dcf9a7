"""Pick the embedded vector store backend by measurement, not by taste.

Each candidate runs in its own subprocess (clean peak-RSS numbers) on the same seeded data:
`--n` clustered unit vectors (384-d), `--queries` held-out queries from the same clusters, and the
exact top-10 from numpy as ground truth. Reported per candidate: build time, recall@10, single-query
QPS, peak RSS growth, the cost of upserting and deleting 1% of the corpus, and (qualitatively)
whether deletes and atomic snapshots are clean.

    .venv/bin/python benchmarks/choose_backend.py [--n 100000] [--queries 500]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM, K, M, EF_CONSTRUCTION, EF_SEARCH = 384, 10, 16, 128, 128
CANDIDATES = ["usearch", "hnswlib", "faiss", "lancedb", "sqlite"]


def clustered(n: int, seed: int, n_clusters: int = 2000, spread: float = 0.05) -> np.ndarray:
    """Unit vectors around `n_clusters` centres: closer to real embeddings than pure noise.

    spread 0.05 in 384-d puts two members of a cluster at cosine ~0.5, like related sentences.
    """
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((n_clusters, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, n_clusters, n)] + spread * rng.standard_normal((n, DIM)).astype(
        np.float32
    )
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_top(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    out = [
        np.argsort(-(queries[s : s + 100] @ data.T), axis=1)[:, :K]
        for s in range(0, len(queries), 100)
    ]
    return np.concatenate(out)


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    return float(
        np.mean(
            [
                len(set(f[:K].tolist()) & set(t.tolist())) / K
                for f, t in zip(found, truth, strict=True)
            ]
        )
    )


def rss_mb() -> float:
    """Current resident set size (peak RSS would be dominated by the ground-truth matmul)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Candidate:
    """build / query / upsert / delete over integer ids."""

    deletes = snapshots = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir


class USearch(Candidate):
    deletes = "yes (remove; keys reused)"
    snapshots = "save file + os.replace; SQLite backup API for records"

    def build(self, data: np.ndarray) -> None:
        from usearch.index import Index

        self.index = Index(
            ndim=DIM,
            metric="cos",
            dtype="f32",
            connectivity=M,
            expansion_add=EF_CONSTRUCTION,
            expansion_search=EF_SEARCH,
        )
        self.index.add(np.arange(len(data), dtype=np.uint64), data)

    def query(self, q: np.ndarray) -> np.ndarray:
        return np.asarray(self.index.search(q, K).keys)

    def upsert(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        self.index.remove(ids.astype(np.uint64))
        self.index.add(ids.astype(np.uint64), vecs)

    def delete(self, ids: np.ndarray) -> None:
        self.index.remove(ids.astype(np.uint64))


class HnswLib(Candidate):
    deletes = "mark_deleted (tombstones; replace_deleted)"
    snapshots = "save_index + os.replace; SQLite backup API for records"

    def build(self, data: np.ndarray) -> None:
        import hnswlib

        self.index = hnswlib.Index(space="cosine", dim=DIM)
        self.index.init_index(
            max_elements=len(data) * 2,
            ef_construction=EF_CONSTRUCTION,
            M=M,
            allow_replace_deleted=True,
        )
        self.index.add_items(data, np.arange(len(data)))
        self.index.set_ef(EF_SEARCH)

    def query(self, q: np.ndarray) -> np.ndarray:
        return self.index.knn_query(q, K)[0][0]

    def upsert(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        # In-place label updates and replace_deleted are slow (graph repair); the store gives
        # every write a fresh label and tombstones the old one (compacted by rebuild).
        for i in ids:
            self.index.mark_deleted(int(i))
        self.index.add_items(vecs, ids + 10 * self.index.get_max_elements())

    def delete(self, ids: np.ndarray) -> None:
        for i in ids:
            self.index.mark_deleted(int(i))


class Faiss(Candidate):
    deletes = "no remove_ids on IndexHNSW (needs IDMap2 + rebuild)"
    snapshots = "write_index + os.replace"

    def build(self, data: np.ndarray) -> None:
        import faiss

        faiss.omp_set_num_threads(2)
        self.faiss = faiss
        self.index = faiss.IndexHNSWFlat(DIM, M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = EF_CONSTRUCTION
        self.index.hnsw.efSearch = EF_SEARCH
        self.index.add(data)

    def query(self, q: np.ndarray) -> np.ndarray:
        return self.index.search(q[None, :], K)[1][0]

    def upsert(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        self.index.add(vecs)  # append only: the old vectors stay reachable (no delete)

    def delete(self, ids: np.ndarray) -> None:
        raise NotImplementedError


class Lance(Candidate):
    deletes = "yes (delete predicate; index needs optimize())"
    snapshots = "table versions (time travel); BM25 via separate FTS index"

    def build(self, data: np.ndarray) -> None:
        import lancedb
        import pyarrow as pa

        db = lancedb.connect(str(self.workdir / "lance"))
        vec = pa.FixedSizeListArray.from_arrays(pa.array(data.reshape(-1)), DIM)
        self.table = db.create_table("t", pa.table({"id": np.arange(len(data)), "vector": vec}))
        self.table.create_index(
            metric="cosine",
            vector_column_name="vector",
            index_type="IVF_HNSW_SQ",
            num_partitions=64,
        )

    def query(self, q: np.ndarray) -> np.ndarray:
        res = self.table.search(q).metric("cosine").nprobes(8).limit(K).select(["id"]).to_arrow()
        return res["id"].to_numpy()

    def upsert(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        import pyarrow as pa

        vec = pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), DIM)
        (
            self.table.merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(pa.table({"id": ids, "vector": vec}))
        )

    def delete(self, ids: np.ndarray) -> None:
        self.table.delete(f"id IN ({','.join(str(int(i)) for i in ids)})")


class SQLiteOnly(Candidate):
    """The record store every *+SQLite combo shares: rows with float32 blobs and an FTS5 table."""

    deletes = "yes (row + FTS delete in one transaction)"
    snapshots = "sqlite3 backup API (consistent online copy)"

    def build(self, data: np.ndarray) -> None:
        self.db = sqlite3.connect(self.workdir / "r.sqlite")
        self.db.executescript(
            "PRAGMA journal_mode=WAL; CREATE TABLE r(id INTEGER PRIMARY KEY, "
            "text TEXT, v BLOB); CREATE VIRTUAL TABLE f USING fts5(text);"
        )
        words = np.array(["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "zeta"])
        rng = np.random.default_rng(1)
        with self.db:
            for s in range(0, len(data), 5000):
                rows = [
                    (i, " ".join(rng.choice(words, 30)), data[i].tobytes())
                    for i in range(s, min(s + 5000, len(data)))
                ]
                self.db.executemany("INSERT INTO r VALUES (?,?,?)", rows)
                self.db.executemany("INSERT INTO f(rowid,text) VALUES (?,?)", [r[:2] for r in rows])
        self.data = data

    def query(self, q: np.ndarray) -> np.ndarray:  # exact search over the blobs (numpy)
        return np.argsort(-(self.data @ q))[:K]

    def upsert(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO r VALUES (?,?,?)",
                [(int(i), "alpha beta", v.tobytes()) for i, v in zip(ids, vecs, strict=True)],
            )

    def delete(self, ids: np.ndarray) -> None:
        with self.db:
            self.db.executemany("DELETE FROM r WHERE id=?", [(int(i),) for i in ids])
            self.db.executemany("DELETE FROM f WHERE rowid=?", [(int(i),) for i in ids])


def run_one(name: str, n: int, n_queries: int) -> dict[str, object]:
    clusters = max(10, n // 50)
    data = clustered(n, seed=1, n_clusters=clusters)
    queries = clustered(n_queries, seed=2, n_clusters=clusters)
    truth = exact_top(data, queries)
    cls = {
        "usearch": USearch,
        "hnswlib": HnswLib,
        "faiss": Faiss,
        "lancedb": Lance,
        "sqlite": SQLiteOnly,
    }[name]
    workdir = Path(tempfile.mkdtemp(prefix=f"choose-{name}-"))
    try:
        cand, base = cls(workdir), rss_mb()
        t0 = time.perf_counter()
        cand.build(data)
        build_s = time.perf_counter() - t0
        qn = n_queries if name != "sqlite" else min(n_queries, 100)
        t0 = time.perf_counter()
        found = [cand.query(q) for q in queries[:qn]]
        qps = qn / (time.perf_counter() - t0)
        batch = max(1, n // 100)
        ids = np.arange(batch, dtype=np.int64)
        t0 = time.perf_counter()
        cand.upsert(ids, clustered(batch, seed=3, n_clusters=clusters))
        upsert_ms = (time.perf_counter() - t0) * 1000
        try:
            t0 = time.perf_counter()
            cand.delete(ids + batch)
            delete_ms: object = round((time.perf_counter() - t0) * 1000, 1)
        except NotImplementedError:
            delete_ms = "n/a"
        disk = sum(p.stat().st_size for p in workdir.rglob("*") if p.is_file()) / 2**20
        return {
            "backend": name,
            "build_s": round(build_s, 1),
            "recall@10": round(recall(found, truth[:qn]), 3),
            "qps": round(qps),
            "rss_mb": round(rss_mb() - base),
            "disk_mb": round(disk),
            f"upsert_{batch}_ms": round(upsert_ms, 1),
            f"delete_{batch}_ms": delete_ms,
            "deletes": cls.deletes,
            "snapshots": cls.snapshots,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--only", choices=CANDIDATES)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(run_one(args.only, args.n, args.queries)))
        return
    rows = []
    for name in CANDIDATES:
        cmd = [
            sys.executable,
            __file__,
            "--n",
            str(args.n),
            "--queries",
            str(args.queries),
            "--only",
            name,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            rows.append({"backend": name, "error": out.stderr.strip().splitlines()[-1:]})
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr, flush=True)
    cols = list(dict.fromkeys(c for r in rows for c in r))
    print(f"n={args.n} dim={DIM} queries={args.queries} M={M} efC={EF_CONSTRUCTION} ef={EF_SEARCH}")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    print(
        "sqlite row: exact numpy search over the stored blobs (the fallback / ground truth); "
        "its build_s is inserting records + FTS5 text."
    )


if __name__ == "__main__":
    main()
