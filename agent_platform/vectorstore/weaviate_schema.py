"""Weaviate schema and helpers: the collection layout, chunk-id UUIDs and filter building."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, cast

from agent_platform.vectorstore.base import MetadataValue
from agent_platform.vectorstore.validation import filterable

NAMESPACE = uuid.UUID("6f1c1f2e-6c1a-4f53-9d55-3b1f0c7a2e11")


def chunk_uuid(tenant: str, chunk_id: str) -> uuid.UUID:
    """Deterministic: re-inserting a chunk id overwrites the same Weaviate object."""
    return uuid.uuid5(NAMESPACE, f"{tenant}\x00{chunk_id}")


def create_collection(
    client: Any, name: str, ef: int, ef_construction: int, max_connections: int
) -> None:
    """Multi-tenant collection, self-provided vectors, cosine HNSW (tenants auto-created)."""
    from weaviate.classes.config import (
        Configure,
        DataType,
        Property,
        Tokenization,
        VectorDistances,
    )

    field: dict[str, Any] = {"data_type": DataType.TEXT, "tokenization": Tokenization.FIELD}
    client.collections.create(
        name,
        multi_tenancy_config=Configure.multi_tenancy(enabled=True, auto_tenant_creation=True),
        vector_config=Configure.Vectors.self_provided(
            vector_index_config=Configure.VectorIndex.hnsw(
                distance_metric=VectorDistances.COSINE,
                ef=ef,
                ef_construction=ef_construction,
                max_connections=max_connections,
            )
        ),
        properties=[
            Property(name="chunk_id", **field),
            Property(name="document_id", **field),
            Property(name="source", **field),
            Property(name="text", data_type=DataType.TEXT, tokenization=Tokenization.WORD),
            Property(
                name="metadata_json",
                data_type=DataType.TEXT,
                index_searchable=False,
                index_filterable=False,
            ),
        ],
    )


def metadata_properties(metadata: Mapping[str, MetadataValue]) -> dict[str, Any]:
    """The filterable `m_<key>` properties of a chunk: top-level scalars under identifier keys.

    Everything else (nested values, None, keys such as `loc.lines`) lives only in the exact
    `metadata_json` text, which is what reads return.
    """
    return {f"m_{k}": v for k, v in metadata.items() if filterable(k, v)}


def weaviate_filter(filters: Mapping[str, MetadataValue]) -> Any:
    """Equality on source / document_id / `m_<key>` metadata properties, AND-ed (None if none)."""
    from weaviate.classes.query import Filter

    parts = [
        Filter.by_property(key if key in ("source", "document_id") else f"m_{key}").equal(
            cast(Any, v)
        )
        for key, v in filters.items()
    ]
    return None if not parts else parts[0] if len(parts) == 1 else Filter.all_of(parts)
