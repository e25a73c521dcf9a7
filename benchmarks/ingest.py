"""Ingest benchmark: full materialization vs raw model.encode, incremental runs, peak memory.

    .venv/bin/python benchmarks/ingest.py [--chunks 20000] [--memory-sizes 10000,100000]

1. Throughput: the whole `knowledge_job` (load, chunk, embed, index, checks) on a fresh home vs
   raw `SentenceTransformer.encode` of the same chunk texts in the same run. Goal: ≥ 0.85 of raw.
   The job's Python modules are imported before the timer (as in a code server); loading the
   model is timed, as part of the run.
2. Incremental: re-materialize after 1% of documents change. Goal: ≤ 10% of the full run's time.
3. Memory: peak RSS of a full run at each size, each in its own process. To measure the pipeline's
   memory rather than the model's speed, a separate process first pre-fills the embedding cache
   with clustered unit vectors (the model still loads; no chunk reaches it). Goal: flat beyond
   the index.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.corpus import change_documents, write_corpus


def _settings(home: Path):
    os.environ["AGENT_PLATFORM_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    from agent_platform.settings import get_settings

    return get_settings()


def _ingest(settings, tenant: str, source: Path) -> tuple[float, dict]:
    from agent_platform.cli.execution import run_tenant_job
    from agent_platform.tenants import TenantRegistry

    TenantRegistry(settings.tenant_registry_path).register(tenant, source)
    start = time.perf_counter()
    outcome = run_tenant_job(settings, "knowledge_job", tenant)
    elapsed = time.perf_counter() - start
    if not outcome.success:
        raise SystemExit(f"materialization failed: {outcome.failures}")
    return elapsed, outcome.metadata


def throughput(chunks: int, work: Path) -> dict:
    from agent_platform.knowledge.embedder import Embedder
    from agent_platform.knowledge.tables import TenantTables

    source = work / "corpus"
    paths = write_corpus(source, chunks)
    settings = _settings(work / "home")
    # Import the code location and the model libraries first, as a Dagster code server has: the
    # run pays for loading the model, not for Python importing torch, MLflow and Dagster.
    import_start = time.perf_counter()
    import sentence_transformers  # noqa: F401

    import agent_platform.definitions  # noqa: F401

    import_s = time.perf_counter() - import_start
    full_s, meta = _ingest(settings, "bench", source)
    n_chunks = meta["document_chunks"]["chunks_total"]

    tables = TenantTables(settings.knowledge_dir, "bench")
    texts = [t for b in tables.iter_batches("chunks", ["text"]) for t in b.column(0).to_pylist()]
    tokens = [
        n for b in tables.iter_batches("chunks", ["n_tokens"]) for n in b.column(0).to_pylist()
    ]
    embedder = Embedder(settings.embedding)
    model = embedder._ensure_model()  # the raw SentenceTransformer, no cache, no pipeline
    start = time.perf_counter()
    model.encode(texts, batch_size=settings.embedding.batch_size, normalize_embeddings=True)
    raw_s = time.perf_counter() - start

    changed = change_documents(paths, 0.01)
    incremental_s, meta2 = _ingest(settings, "bench", source)
    return {
        "chunks": n_chunks,
        "mean_tokens_per_chunk": round(sum(tokens) / len(tokens), 1),
        "imports_s (not timed)": round(import_s, 1),
        "full_s": round(full_s, 1),
        "raw_encode_s": round(raw_s, 1),
        "full_chunks_per_s": round(n_chunks / full_s, 1),
        "raw_chunks_per_s": round(n_chunks / raw_s, 1),
        "ratio_full_vs_raw": round(raw_s / full_s, 3),
        "documents_changed": changed,
        "incremental_s": round(incremental_s, 1),
        "incremental_chunks_embedded": meta2["embeddings"]["chunks_embedded"],
        "incremental_vs_full": round(incremental_s / full_s, 3),
    }


def memory_prefill(chunks: int, work: Path) -> None:
    """Own process: write the corpus, chunk it, and fill the cache with clustered vectors."""
    import shutil

    import numpy as np

    from agent_platform.knowledge import pipeline
    from agent_platform.knowledge.embedding_cache import EmbeddingCache, text_hash
    from agent_platform.knowledge.service import KnowledgeBase
    from agent_platform.knowledge.tables import TenantTables

    source = work / "corpus"
    write_corpus(source, chunks, seed=7)
    settings = _settings(work / "home")
    kb = KnowledgeBase(settings)
    tables = TenantTables(settings.knowledge_dir, "mem")
    pipeline.load_documents(source, tables, settings.embedding.max_document_bytes)
    pipeline.chunk_documents(tables, kb.chunker)
    cache = EmbeddingCache(settings.embedding_cache_path)
    rng = np.random.default_rng(0)
    # Clustered like real sentence embeddings (i.i.d. Gaussian vectors defeat any HNSW index and
    # would rightly fail the blocking recall check).
    centres = rng.normal(size=(500, 384)).astype(np.float32)
    for batch in tables.iter_batches("chunks", ["text"], batch_size=8192):
        members = centres[rng.integers(0, len(centres), batch.num_rows)]
        vectors = members + 0.6 * rng.normal(size=members.shape).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        cache.put_many(
            kb.embedder.model_name,
            zip([text_hash(t) for t in batch.column(0).to_pylist()], vectors, strict=True),
        )
    cache.close()
    kb.close()
    shutil.rmtree(settings.knowledge_dir)  # the measured run starts from scratch but the cache


def _peak_rss_kib() -> int:
    """This process image's RSS high-water mark (VmHWM). Not `ru_maxrss`: Linux carries that over
    from the forked parent across exec, so a child of a large parent would report its size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux


def memory_measure(work: Path) -> None:
    """Own process: the full knowledge job; its peak RSS is this process's high-water mark."""
    settings = _settings(work / "home")
    elapsed, meta = _ingest(settings, "mem", work / "corpus")
    peak_kb = _peak_rss_kib()
    index_bytes = sum(p.stat().st_size for p in settings.index_dir.rglob("*") if p.is_file())
    chunks = meta["document_chunks"]["chunks_total"]
    print(
        json.dumps(
            {
                "chunks": chunks,
                "seconds": round(elapsed, 1),
                "peak_rss_mib": round(peak_kb / 1024),
                "index_on_disk_mib": round(index_bytes / 2**20, 1),
                "raw_vectors_mib": round(chunks * 384 * 4 / 2**20, 1),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--memory-sizes", default="10000,100000")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--memory-prefill", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--memory-measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_prefill:
        memory_prefill(args.memory_prefill, args.work)
        return
    if args.memory_measure:
        memory_measure(args.work)
        return

    width = 36
    print(f"{'measure'.ljust(width)}  value", flush=True)
    if not args.skip_throughput:
        with tempfile.TemporaryDirectory() as work:
            result = throughput(args.chunks, Path(work))
        for key, value in result.items():
            print(f"{key.ljust(width)}  {value}", flush=True)
    for size in [int(s) for s in args.memory_sizes.split(",") if s]:
        with tempfile.TemporaryDirectory() as work:
            for step in (["--memory-prefill", str(size)], ["--memory-measure"]):
                child = subprocess.run(
                    [sys.executable, __file__, *step, "--work", work],
                    capture_output=True,
                    text=True,
                )
                if child.returncode != 0:
                    break
        if child.returncode != 0:
            print(f"memory[{size}] failed:\n{child.stderr[-3000:]}", file=sys.stderr, flush=True)
            continue
        for key, value in json.loads(child.stdout.strip().splitlines()[-1]).items():
            print(f"{f'memory[{size}] {key}'.ljust(width)}  {value}", flush=True)


if __name__ == "__main__":
    main()
