"""Search benchmark of the embedded store: ANN recall and QPS vs numpy brute force, query latency.

    .venv/bin/python benchmarks/search.py [--n 100000] [--real 10000] [--queries 300]

Datasets (384-d, unit norm):
- clustered: `--n` vectors around n/50 centres (members of a cluster at cosine ~0.5, like
  related sentences); queries are fresh points from the same clusters.
- gaussian: `--n` i.i.d. Gaussian vectors, the worst case for HNSW (no structure, every
  neighbour nearly equidistant); queries are fresh Gaussian vectors.
- real: `--real` template-generated sentences embedded with all-MiniLM-L6-v2; queries are
  other generated sentences.
For each, recall@10 of `store.search(mode=vector)` against exact numpy top-10, and QPS of the full
`store.search` call (ANN + SQLite row fetch) against a numpy brute-force matvec + argpartition over
the same in-memory matrix, at several efSearch values. Then p50/p99 of a full query: embed the
text with the real model + hybrid/vector search (clustered store, or real with --skip-synthetic).
"""

from __future__ import annotations

import argparse
import itertools
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent_platform.vectorstore.base import ChunkRecord, SearchMode
from agent_platform.vectorstore.embedded import EmbeddedVectorStore
from agent_platform.vectorstore.embedded_ann import AnnParams

DIM, K, TENANT = 384, 10, "bench"
EF_SWEEP = (32, 48, 64, 96, 128, 256)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = unit(rng.standard_normal((max(10, n // 50), DIM)))

    def draw(m: int) -> np.ndarray:
        picks = centres[rng.integers(0, len(centres), m)]
        return unit(picks + 0.05 * rng.standard_normal((m, DIM)).astype(np.float32))

    return draw(n), draw(q)


def gaussian(n: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return unit(rng.standard_normal((n, DIM))), unit(rng.standard_normal((q, DIM)))


SUBJECTS = [
    "the customer",
    "our team",
    "a new hire",
    "the auditor",
    "the on-call engineer",
    "a partner",
    "the CFO",
    "the support bot",
    "a student",
    "the landlord",
    "my neighbour",
    "the courier",
]
VERBS = [
    "requested",
    "cancelled",
    "approved",
    "reviewed",
    "escalated",
    "lost",
    "renewed",
    "disputed",
    "shipped",
    "documented",
    "migrated",
    "forgot",
]
OBJECTS = [
    "the invoice",
    "a refund",
    "the password",
    "the contract",
    "the server certificate",
    "a parcel",
    "the quarterly report",
    "the database backup",
    "a hotel booking",
    "the API key",
    "the lease",
    "the flight ticket",
    "a pull request",
    "the payroll run",
]
WHEN = [
    "yesterday",
    "last week",
    "before the audit",
    "after the outage",
    "on Monday",
    "during the trip",
    "at midnight",
    "twice this month",
    "without telling anyone",
    "in the new system",
]


HOW = ["by email", "by phone", "in the portal", "through the mobile app", "in person"]


def sentences(n: int, seed: int) -> list[str]:
    combos = list(itertools.product(SUBJECTS, VERBS, OBJECTS, HOW, WHEN))
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(combos), size=min(n, len(combos)), replace=False)
    return [" ".join(combos[i]) + "." for i in picks]


def build(root: Path, data: np.ndarray, ef: int) -> tuple[EmbeddedVectorStore, float]:
    store = EmbeddedVectorStore(root, params=AnnParams(ef_search=ef))
    records = (
        ChunkRecord(f"c{i}", f"d{i // 10}", "bench", f"chunk {i} group {i % 97}", data[i], {})
        for i in range(len(data))
    )
    start = time.perf_counter()
    store.upsert(TENANT, records)
    return store, time.perf_counter() - start


def set_ef(store: EmbeddedVectorStore, ef: int) -> None:
    state = store._tenants[TENANT]
    state.params = state.ann.params = AnnParams(ef_search=ef)


def brute_force_qps(data: np.ndarray, queries: np.ndarray) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    top = []
    for q in queries:
        scores = data @ q
        part = np.argpartition(-scores, K)[:K]
        top.append(part[np.argsort(-scores[part])])
    return len(queries) / (time.perf_counter() - start), np.array(top)


def evaluate(name: str, data: np.ndarray, queries: np.ndarray, workdir: Path) -> list[dict]:
    bf_qps, truth = brute_force_qps(data, queries)
    store, build_s = build(workdir / name, data, EF_SWEEP[0])
    rows = []
    for ef in EF_SWEEP:
        set_ef(store, ef)
        start = time.perf_counter()
        found = [
            store.search(TENANT, query_text="", query_vector=q, k=K, mode=SearchMode.VECTOR)
            for q in queries
        ]
        qps = len(queries) / (time.perf_counter() - start)
        recall = np.mean(
            [
                len({int(h.chunk_id[1:]) for h in hits} & set(t.tolist())) / K
                for hits, t in zip(found, truth, strict=True)
            ]
        )
        rows.append(
            {
                "dataset": name,
                "n": len(data),
                "build_s": round(build_s, 1),
                "ef": ef,
                "recall@10": round(float(recall), 3),
                "store_qps": round(qps),
                "bruteforce_qps": round(bf_qps),
                "speedup": round(qps / bf_qps, 1),
            }
        )
        print(rows[-1], file=sys.stderr, flush=True)
    store.close()
    return rows


def latency(store_root: Path, embedder, n_queries: int) -> dict[str, float]:
    store = EmbeddedVectorStore(store_root)
    texts = sentences(n_queries, seed=7)
    for text in texts[:5]:  # warm-up: model graph, SQLite page cache
        store.search(TENANT, query_text=text, query_vector=embedder.embed_query(text), k=K)
    timings: dict[str, list[float]] = {"hybrid": [], "vector": []}
    for text in texts:
        for mode in timings:
            start = time.perf_counter()
            vector = embedder.embed_query(text)
            store.search(TENANT, query_text=text, query_vector=vector, k=K, mode=SearchMode(mode))
            timings[mode].append((time.perf_counter() - start) * 1000)
    store.close()
    out = {}
    for mode, values in timings.items():
        out[f"{mode}_p50_ms"] = round(float(np.percentile(values, 50)), 1)
        out[f"{mode}_p99_ms"] = round(float(np.percentile(values, 99)), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--real", type=int, default=10_000, help="embedded sentences (0: skip)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--skip-synthetic", action="store_true", help="only the real dataset")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="search-bench-"))
    rows: list[dict] = []
    try:
        if not args.skip_synthetic:
            rows += evaluate("clustered", *clustered(args.n, args.queries), workdir)
            rows += evaluate("gaussian", *gaussian(args.n, args.queries), workdir)
        from agent_platform.knowledge.embedder import Embedder
        from agent_platform.settings import EmbeddingSettings

        embedder = Embedder(EmbeddingSettings())
        if args.real:
            texts = sentences(args.real + args.queries, seed=3)
            start = time.perf_counter()
            vectors = embedder.encode(texts)
            print(
                f"embedded {len(texts)} sentences in {time.perf_counter() - start:.0f}s",
                file=sys.stderr,
            )
            rows += evaluate("real", vectors[: -args.queries], vectors[-args.queries :], workdir)
        latency_store = "real" if args.skip_synthetic else "clustered"
        lat = latency(workdir / latency_store, embedder, args.queries)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"# {datetime.now(UTC):%Y-%m-%d} {platform.processor() or platform.machine()}, "
        f"{__import__('os').cpu_count()} CPUs, k={K}, queries={args.queries}"
    )
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in cols) + " |")
    print(f"\nFull query (embed with all-MiniLM-L6-v2 + search, {latency_store} store, k=10):")
    print("| " + " | ".join(lat) + " |")
    print("|" + "---|" * len(lat))
    print("| " + " | ".join(str(v) for v in lat.values()) + " |")


if __name__ == "__main__":
    main()
