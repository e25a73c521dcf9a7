"""`KnowledgeBase`: one object that opens a tenant's tables, the embedder and the vector store.

The Dagster resources and the serving runtime both build one from `Settings`, so a search at
request time runs exactly the code the assets used to build the index.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property

from agent_platform.knowledge.chunking import TokenChunker, chunker_for
from agent_platform.knowledge.embedder import Embedder
from agent_platform.knowledge.embedding_cache import EmbeddingCache
from agent_platform.knowledge.tables import TenantTables
from agent_platform.settings import Settings
from agent_platform.tenants import TenantRegistry, validate_tenant_name
from agent_platform.vectorstore.base import MetadataValue, SearchHit, SearchMode, VectorStore


class KnowledgeBase:
    """Lazily opened handles to everything a tenant's knowledge lives in."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: VectorStore | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._embedder = embedder
        self._cache: EmbeddingCache | None = None

    @cached_property
    def registry(self) -> TenantRegistry:
        return TenantRegistry(self.settings.tenant_registry_path)

    def tables(self, tenant: str) -> TenantTables:
        return TenantTables(self.settings.knowledge_dir, validate_tenant_name(tenant))

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._cache = EmbeddingCache(self.settings.embedding_cache_path)
            self._embedder = Embedder(
                self.settings.embedding, self._cache, self.settings.embedding_export_dir
            )
        return self._embedder

    @property
    def store(self) -> VectorStore:
        if self._store is None:
            from agent_platform.vectorstore.factory import open_vector_store

            self._store = open_vector_store(self.settings)
        return self._store

    @cached_property
    def chunker(self) -> TokenChunker:
        embedding = self.settings.embedding
        return chunker_for(self.embedder, embedding.chunk_tokens, embedding.chunk_overlap_tokens)

    def search(
        self,
        tenant: str,
        query: str,
        *,
        k: int = 5,
        mode: SearchMode | str = SearchMode.HYBRID,
        filters: Mapping[str, MetadataValue] | None = None,
        min_score: float | None = None,
    ) -> list[SearchHit]:
        """Embed the query (unless keyword-only) and search the tenant's index.

        Raises `UnknownTenantError` for a tenant that was never registered (never an empty list:
        a typo in a tenant name must not look like a search that found nothing)."""
        self.registry.require(tenant)
        if not query or not query.strip():
            raise ValueError("query is empty")
        mode = SearchMode(mode)
        vector = None if mode is SearchMode.KEYWORD else self.embedder.embed_query(query)
        return self.store.search(
            tenant,
            query_text=query,
            query_vector=vector,
            k=k,
            mode=mode,
            filters=filters,
            min_score=min_score,
        )

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._cache is not None:
            self._cache.close()
