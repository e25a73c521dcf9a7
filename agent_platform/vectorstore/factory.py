"""Pick the vector store backend from settings: switching backends is configuration only."""

from __future__ import annotations

from agent_platform.settings import Settings
from agent_platform.vectorstore.base import VectorStore


def open_vector_store(settings: Settings) -> VectorStore:
    """Embedded files under `settings.index_dir`, or the Weaviate server at `weaviate_url`."""
    backend = settings.resolved_vector_backend
    if backend == "embedded":
        from agent_platform.vectorstore.embedded import EmbeddedVectorStore
        from agent_platform.vectorstore.embedded_ann import AnnParams

        return EmbeddedVectorStore(
            settings.index_dir,
            snapshots_dir=settings.snapshots_dir,
            params=AnnParams(ef_search=settings.hnsw_ef_search),
        )
    if backend == "weaviate":
        if not settings.weaviate_url:
            raise ValueError(
                "vector_backend is 'weaviate' but AGENT_PLATFORM_WEAVIATE_URL is not set"
            )
        from agent_platform.vectorstore.weaviate_store import WeaviateVectorStore

        return WeaviateVectorStore(
            settings.weaviate_url,
            grpc_port=settings.weaviate_grpc_port,
            api_key=settings.weaviate_api_key,
            snapshots_dir=settings.snapshots_dir,
            ef=settings.hnsw_ef_search,
        )
    raise ValueError(f"unknown vector backend {backend!r}: expected 'embedded' or 'weaviate'")
