"""The sentence-transformers embedder with its shared content-hash cache."""

from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from agent_platform.knowledge.embedder import Embedder
from agent_platform.knowledge.embedding_cache import EmbeddingCache
from agent_platform.settings import EmbeddingBackend, EmbeddingSettings


class EmbedderResource(dg.ConfigurableResource):
    """Loads the embedding model offline once per run and shares the embedding cache."""

    primary_model: str = "all-MiniLM-L6-v2"
    fallback_model: str = "all-MiniLM-L6-v2"
    model_dirs: dict[str, str] = Field(default_factory=dict)
    batch_size: int = 64
    backend: EmbeddingBackend = "torch"
    threads: int = 1
    cache_path: str
    export_dir: str | None = None

    _embedder: Embedder | None = PrivateAttr(default=None)
    _cache: EmbeddingCache | None = PrivateAttr(default=None)

    def embedding_settings(self) -> EmbeddingSettings:
        return EmbeddingSettings(
            primary_model=self.primary_model,
            fallback_model=self.fallback_model,
            model_dirs={name: Path(path) for name, path in self.model_dirs.items()},
            batch_size=self.batch_size,
            backend=self.backend,
            threads=self.threads,
        )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._cache = EmbeddingCache(Path(self.cache_path))
        export_dir = Path(self.export_dir) if self.export_dir else None
        self._embedder = Embedder(self.embedding_settings(), self._cache, export_dir)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._cache is not None:
            self._cache.close()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            raise RuntimeError("EmbedderResource used outside a Dagster execution")
        return self._embedder
