"""Embedding backends side by side: query latency, passage throughput, retrieval quality.

    .venv/bin/python benchmarks/embedding_backends.py [--passages 400] [--queries 300] [--rounds 3]

One run, one process, the same texts for every backend (torch, onnx, onnx-int8, openvino) of the
shipped all-MiniLM-L6-v2. Exports are made (and timed) in a fresh directory first.

- Held-out corpus, written by nobody here: the long descriptions of the installed Python packages
  (`importlib.metadata`; this project's own left out), each the passage of its package, first
  2,000 characters; the queries are the packages' one-line summaries. recall@5 = share of
  summaries whose package's description is among the 5 nearest passages (exact cosine search).
- query p50/p95: one summary at a time through `embed_query` (the serving path), after warm-up.
- passage throughput: `encode` of all passages at the configured batch size, best of `--rounds`
  rounds, interleaved across backends so a noisy neighbour hurts all of them alike.
- mean cosine to torch over all passages and queries, and the model files' size on disk.
Writes benchmarks/results/embedding_backends.json (git-ignored).
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from agent_platform.knowledge.embedder import Embedder
from agent_platform.knowledge.embedding_backends import BACKENDS
from agent_platform.settings import EmbeddingSettings

RESULTS = Path(__file__).resolve().parent / "results"


def package_corpus(limit: int) -> tuple[list[str], list[str]]:
    """(passages, queries): installed packages' descriptions and summaries, one pair each."""
    seen: set[str] = set()
    pairs: list[tuple[str, str]] = []
    for dist in sorted(metadata.distributions(), key=lambda d: (d.metadata["Name"] or "").lower()):
        name = (dist.metadata["Name"] or "").lower()
        summary = (dist.metadata["Summary"] or "").strip()
        description = (dist.metadata.get_payload() or dist.metadata["Description"] or "").strip()
        if name in seen or name == "agent-platform" or len(summary) < 20 or len(description) < 300:
            continue
        if summary.lower() in {q.lower() for q, _ in pairs}:
            continue  # identical summaries (families of plugins) have no single right answer
        seen.add(name)
        pairs.append((summary, description[:2000]))
    pairs = pairs[:limit]
    return [d for _, d in pairs], [q for q, _ in pairs]


def recall_at(passages: np.ndarray, queries: np.ndarray, k: int = 5) -> float:
    top = np.argsort(-(queries @ passages.T), axis=1)[:, :k]
    return float(np.mean([i in row for i, row in enumerate(top)]))


def model_bytes(embedder: Embedder) -> int:
    if embedder.exported is None:
        from agent_platform.knowledge.embedder import resolve_model_dir

        folder = resolve_model_dir(embedder.model_name, {})
        return sum(p.stat().st_size for p in folder.rglob("*.safetensors"))
    names = {"onnx": ["model.onnx"], "onnx-int8": ["model-int8.onnx"], "openvino": ["openvino.*"]}
    return sum(
        p.stat().st_size
        for pattern in names[embedder.backend]
        for p in embedder.exported.root.glob(pattern)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passages", type=int, default=400)
    parser.add_argument("--queries", type=int, default=300, help="query latency samples")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    passages, queries = package_corpus(args.passages)
    print(f"corpus: {len(passages)} package descriptions, {len(queries)} summaries as queries")
    export_dir = Path(tempfile.mkdtemp(prefix="embedding-exports-"))
    embedders: dict[str, Embedder] = {}
    export_s: dict[str, float] = {}
    for backend in BACKENDS:
        started = time.perf_counter()
        embedders[backend] = Embedder(EmbeddingSettings(backend=backend), export_dir=export_dir)
        embedders[backend].encode(["warm up"])
        export_s[backend] = time.perf_counter() - started
        print(f"{backend}: loaded (export included) in {export_s[backend]:.1f} s")

    vectors = {b: e.encode(passages) for b, e in embedders.items()}
    query_vectors = {b: np.stack([e.embed_query(q) for q in queries]) for b, e in embedders.items()}
    throughput: dict[str, list[float]] = {b: [] for b in BACKENDS}
    latency: dict[str, list[float]] = {b: [] for b in BACKENDS}
    samples = [queries[i % len(queries)] for i in range(args.queries)]
    for round_ in range(args.rounds):
        for backend, embedder in embedders.items():
            started = time.perf_counter()
            embedder.encode(passages)
            throughput[backend].append(len(passages) / (time.perf_counter() - started))
            for text in samples[round_ :: args.rounds]:
                started = time.perf_counter()
                embedder.embed_query(text)
                latency[backend].append((time.perf_counter() - started) * 1000)
        print(f"round {round_ + 1}/{args.rounds} done")

    reference, reference_q = vectors["torch"], query_vectors["torch"]
    results = {}
    for backend, embedder in embedders.items():
        cosines = np.concatenate(
            [
                (vectors[backend] * reference).sum(axis=1),
                (query_vectors[backend] * reference_q).sum(axis=1),
            ]
        )
        results[backend] = {
            "query_p50_ms": float(np.percentile(latency[backend], 50)),
            "query_p95_ms": float(np.percentile(latency[backend], 95)),
            "passages_per_s": float(max(throughput[backend])),
            "passages_per_s_rounds": [round(x, 1) for x in throughput[backend]],
            "recall_at_5": recall_at(vectors[backend], query_vectors[backend]),
            "recall_at_5_torch_passages": recall_at(reference, query_vectors[backend]),
            "mean_cosine_vs_torch": float(cosines.mean()),
            "min_cosine_vs_torch": float(cosines.min()),
            "model_mb": model_bytes(embedder) / 1e6,
            "load_with_export_s": export_s[backend],
        }
    torch_row = results["torch"]
    print(
        "\n| backend | query p50 ms | query p95 ms | passages/s | ×torch | recall@5 | "
        "mean cos | min cos | model MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for backend, r in results.items():
        print(
            f"| {backend} | {r['query_p50_ms']:.1f} | {r['query_p95_ms']:.1f} | "
            f"{r['passages_per_s']:.0f} | "
            f"{r['passages_per_s'] / torch_row['passages_per_s']:.2f} | "
            f"{r['recall_at_5']:.3f} | {r['mean_cosine_vs_torch']:.4f} | "
            f"{r['min_cosine_vs_torch']:.4f} | {r['model_mb']:.0f} |"
        )
    RESULTS.mkdir(exist_ok=True)
    out = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "passages": len(passages),
        "query_samples": args.queries,
        "rounds": args.rounds,
        "results": results,
    }
    (RESULTS / "embedding_backends.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
