"""Embedding backends: exported graphs agree with torch, exports are cached, spaces never mix.

The graphs are exported once per session into pytest's cache directory (keyed by the weights'
digest, so a later session reuses them; `--cache-clear` exports afresh).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent_platform.knowledge import pipeline
from agent_platform.knowledge.chunking import chunker_for
from agent_platform.knowledge.embedder import Embedder
from agent_platform.knowledge.embedding_cache import EmbeddingCache
from agent_platform.knowledge.tables import TenantTables
from agent_platform.settings import EmbeddingSettings
from agent_platform.vectorstore.embedded import EmbeddedVectorStore

SENTENCES = [
    "Snapshots of every tenant's index are kept for thirty days.",
    "The circuit breaker opens when a model's error rate passes five percent.",
    "ok",
    "Which prompt version is serving in production, and who approved it? " * 12,
]
# Per-channel int8 weights shift each vector slightly: over 200 package summaries the cosine to
# torch was 0.993 on average and never below 0.983; a one-word text ("ok") averages over fewer
# tokens and scores 0.969. Recall@5 stayed within 0.01 of torch (BENCHMARKS.md). Mean 0.98 and
# each above 0.95 still refuse a broken graph (wrong pooling, a dropped attention mask, or
# per-tensor scales, which averaged 0.963 and fell to 0.91).
MIN_COSINE = {"onnx": 0.999, "openvino": 0.999, "onnx-int8": 0.95}
MIN_MEAN_COSINE = {"onnx": 0.999, "openvino": 0.999, "onnx-int8": 0.98}


@pytest.fixture(scope="session")
def export_dir(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.cache.mkdir("embedding-exports"))


@pytest.fixture(scope="session")
def torch_embedder() -> Embedder:
    """The reference every exported graph is held to: the weights run by torch."""
    return Embedder(EmbeddingSettings(backend="torch"))


@pytest.fixture(scope="session")
def backend_embedders(export_dir: Path) -> dict[str, Embedder]:
    embedders = {}
    for backend in MIN_COSINE:
        embedder = Embedder(EmbeddingSettings(backend=backend), export_dir=export_dir)
        embedder.encode(SENTENCES[:1])  # exports here, once per session at most
        embedders[backend] = embedder
    return embedders


@pytest.mark.parametrize("backend", list(MIN_COSINE))
def test_backend_vectors_match_torch(backend: str, backend_embedders, torch_embedder) -> None:
    reference = torch_embedder.encode(SENTENCES)
    vectors = backend_embedders[backend].encode(SENTENCES)
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() > MIN_COSINE[backend], cosines
    assert cosines.mean() > MIN_MEAN_COSINE[backend], cosines
    assert backend_embedders[backend].space == f"all-MiniLM-L6-v2@{backend}"


def test_a_second_load_reuses_the_export(backend_embedders, export_dir: Path) -> None:
    exported = backend_embedders["onnx-int8"].exported
    assert exported is not None
    files = {p: p.stat().st_mtime_ns for p in exported.root.iterdir() if p.is_file()}
    assert {p.name for p in files} >= {"model.onnx", "model-int8.onnx", "openvino.xml"}
    again = Embedder(EmbeddingSettings(backend="onnx-int8"), export_dir=export_dir)
    np.testing.assert_allclose(
        again.encode(SENTENCES), backend_embedders["onnx-int8"].encode(SENTENCES), atol=1e-6
    )
    assert again.exported is not None and again.exported.exports == 0
    assert {p: p.stat().st_mtime_ns for p in files} == files


def test_a_change_of_backend_reembeds_the_whole_index(
    tmp_path: Path, backend_embedders, torch_embedder, export_dir: Path
) -> None:
    source = tmp_path / "docs"
    source.mkdir()
    (source / "ops.md").write_text("\n\n".join(SENTENCES[:2]) + "\n")
    tables = TenantTables(tmp_path / "knowledge", "acme")
    store = EmbeddedVectorStore(tmp_path / "index")
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    onnx = Embedder(EmbeddingSettings(backend="onnx"), cache, export_dir)
    try:
        pipeline.load_documents(source, tables, max_bytes=1_000_000)
        pipeline.chunk_documents(tables, chunker_for(torch_embedder, 24, 4))
        pipeline.embed_chunks(tables, torch_embedder)
        first = pipeline.sync_index("acme", tables, store)
        assert store.embedding_space("acme") == "all-MiniLM-L6-v2" and first.chunks_reembedded == 0

        summary = pipeline.embed_chunks(tables, onnx)
        assert summary.space == "all-MiniLM-L6-v2@onnx" and summary.chunks_reused == 0
        assert cache.count("all-MiniLM-L6-v2@onnx") == 2 and cache.count("all-MiniLM-L6-v2") == 0
        second = pipeline.sync_index("acme", tables, store)
        assert (second.chunks_reembedded, second.chunks_upserted) == (2, 2)
        assert store.embedding_space("acme") == "all-MiniLM-L6-v2@onnx"
        records = store.get_records("acme", list(store.indexed_metadata("acme")))
        stored = np.stack([r.vector for r in records])
        np.testing.assert_allclose(stored, onnx.encode([r.text for r in records]), atol=1e-6)
    finally:
        store.close()
        cache.close()


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_threads_setting_reaches_the_graph_runtime(
    backend: str, backend_embedders, export_dir: Path
) -> None:
    """`embedding.threads` becomes ONNX Runtime's intra_op_num_threads and OpenVINO's
    INFERENCE_NUM_THREADS, as the compiled session reports them."""
    assert backend_embedders[backend].runtime_threads == 1  # the default setting
    # 2, not more: OpenVINO caps the count at the machine's cores (2 here)
    settings = EmbeddingSettings(backend=backend, threads=2)  # type: ignore[arg-type]
    assert Embedder(settings, export_dir=export_dir).runtime_threads == 2


def test_a_fresh_export_directory_can_start_with_openvino(tmp_path: Path) -> None:
    """openvino (the measured best) as the first backend of a fresh home exports the onnx graph
    it converts from, then itself: the export lock is taken twice on one thread (a plain lock
    hung here forever; the session's exports always began with onnx and never met it)."""
    embedder = Embedder(EmbeddingSettings(backend="openvino"), export_dir=tmp_path)
    assert embedder.encode(SENTENCES[:1]).shape == (1, 384)
    assert embedder.exported is not None and embedder.exported.exports == 2
    assert {"model.onnx", "openvino.xml"} <= {p.name for p in embedder.exported.root.iterdir()}
