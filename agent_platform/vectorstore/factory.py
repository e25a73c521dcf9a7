"""Pick the vector store backend from settings: switching backends is configuration only."""

from __future__ import annotations

from agent_platform.settings import Settings
from agent_platform.vectorstore.base import VectorStore
from agent_platform.vectorstore.namespaces import (
    StoreNamespace,
    embedded_root,
    embedded_snapshots_dir,
    weaviate_collection,
)


def open_vector_store(
    settings: Settings, namespace: StoreNamespace = StoreNamespace.KNOWLEDGE
) -> VectorStore:
    """Embedded files under the namespace's root, or its collection on the Weaviate server at
    `weaviate_url`. Knowledge and memory are separate namespaces (see `namespaces.py`)."""
    backend = settings.resolved_vector_backend
    namespace = StoreNamespace(namespace)
    if backend == "embedded":
        from agent_platform.vectorstore.embedded import EmbeddedVectorStore
        from agent_platform.vectorstore.embedded_ann import AnnParams

        return EmbeddedVectorStore(
            embedded_root(settings, namespace),
            snapshots_dir=embedded_snapshots_dir(settings, namespace),
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
            collection=weaviate_collection(namespace),
            snapshots_dir=embedded_snapshots_dir(settings, namespace),
            ef=settings.hnsw_ef_search,
        )
    raise ValueError(f"unknown vector backend {backend!r}: expected 'embedded' or 'weaviate'")
