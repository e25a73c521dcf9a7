"""CPU per query embedding with the runtime's default threads against `embedding.threads` pinned.

    .venv/bin/python benchmarks/embedding_threads.py [--queries 300] [--passages 200] [--rounds 2]
        [--backends torch openvino onnx-int8] [--threads default 1 2]

Each (backend, threads) pair runs in a fresh process (torch's thread count is process-wide),
interleaved over `--rounds` so a noisy neighbour hurts every pair alike; the best round is kept.
A child embeds `--queries` package summaries one at a time through `embed_query` (the serving
path) after 30 warm-up calls, and reports the process CPU time (`time.process_time`, every
thread) and the wall time per query; then it encodes `--passages` package descriptions in one
call (the ingest path) and reports passages per second. Exports are made once, in the first
child, under `--export-dir` (a fresh temporary directory unless given).
Writes benchmarks/results/embedding_threads.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = Path(__file__).resolve().parent / "results"
WARM_UP = 30


def child(backend: str, threads: int, export_dir: Path, queries: int, passages: int) -> dict:
    """One (backend, threads) measurement in this process."""
    from agent_platform.knowledge.embedder import Embedder
    from agent_platform.settings import EmbeddingSettings
    from benchmarks.embedding_backends import package_corpus

    texts, summaries = package_corpus(max(passages, queries))
    settings = EmbeddingSettings(backend=backend, threads=threads)  # type: ignore[arg-type]
    embedder = Embedder(settings, export_dir=export_dir)
    for text in summaries[:WARM_UP]:
        embedder.embed_query(text)
    samples = [summaries[i % len(summaries)] for i in range(queries)]
    latencies = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for text in samples:
        started = time.perf_counter()
        embedder.embed_query(text)
        latencies.append((time.perf_counter() - started) * 1000)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    embedder.encode(texts[:passages])
    cpu2, wall2 = time.process_time(), time.perf_counter()
    return {
        "cpu_ms_per_query": (cpu1 - cpu0) * 1000 / queries,
        "wall_ms_per_query": (wall1 - wall0) * 1000 / queries,
        "query_p50_ms": float(np.percentile(latencies, 50)),
        "query_p95_ms": float(np.percentile(latencies, 95)),
        "passages_per_s": passages / (wall2 - wall1),
        "cpu_ms_per_passage": (cpu2 - cpu1) * 1000 / passages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--passages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["torch", "openvino", "onnx-int8"])
    parser.add_argument("--threads", nargs="+", default=["default", "1", "2"])
    parser.add_argument("--export-dir", type=Path, default=None)
    parser.add_argument("--child", nargs=2, metavar=("BACKEND", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    export_dir = args.export_dir or Path(tempfile.mkdtemp(prefix="embedding-exports-"))
    if args.child:
        backend, threads = args.child
        number = 0 if threads == "default" else int(threads)
        print(json.dumps(child(backend, number, export_dir, args.queries, args.passages)))
        return

    pairs = [(b, t) for b in args.backends for t in args.threads]
    runs: dict[str, list[dict]] = {f"{b}/{t}": [] for b, t in pairs}
    for round_ in range(args.rounds):
        for backend, threads in pairs:
            command = [sys.executable, __file__, "--child", backend, threads]
            command += ["--queries", str(args.queries), "--passages", str(args.passages)]
            command += ["--export-dir", str(export_dir)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            runs[f"{backend}/{threads}"].append(result)
            print(
                f"round {round_ + 1} {backend} threads={threads}: {json.dumps(result)}", flush=True
            )

    best = {
        key: {
            "cpu_ms_per_query": min(r["cpu_ms_per_query"] for r in rounds),
            "query_p50_ms": min(r["query_p50_ms"] for r in rounds),
            "query_p95_ms": min(r["query_p95_ms"] for r in rounds),
            "passages_per_s": max(r["passages_per_s"] for r in rounds),
            "cpu_ms_per_passage": min(r["cpu_ms_per_passage"] for r in rounds),
        }
        for key, rounds in runs.items()
    }
    print(
        "\n| backend | threads | CPU ms/query | query p50 / p95 ms | passages/s | CPU ms/passage |"
    )
    print("|---|---|---|---|---|---|")
    for key, r in best.items():
        backend, threads = key.split("/")
        print(
            f"| {backend} | {threads} | {r['cpu_ms_per_query']:.1f} | "
            f"{r['query_p50_ms']:.1f} / {r['query_p95_ms']:.1f} | {r['passages_per_s']:.1f} | "
            f"{r['cpu_ms_per_passage']:.1f} |"
        )
    RESULTS.mkdir(exist_ok=True)
    out = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_average": os.getloadavg(),
        "queries": args.queries,
        "passages": args.passages,
        "rounds": runs,
        "best": best,
    }
    (RESULTS / "embedding_threads.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
