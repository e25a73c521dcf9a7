"""Store namespaces: knowledge indexes and long-term memories never share one.

A tenant name selects a partition *inside* a namespace; it can never select the namespace. The
embedded backend keeps each namespace under its own root directory (`<home>/index` and
`<home>/memory-index`, siblings, neither inside the other), and Weaviate keeps each in its own
collection. So `ingest`, `index rebuild`/`backup`/`restore` and `search`, which open the
knowledge namespace only, cannot reach a memory whatever tenant name they are given.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from agent_platform.settings import Settings


class StoreNamespace(StrEnum):
    KNOWLEDGE = "knowledge"
    MEMORY = "memory"


# Weaviate collection names start with an upper-case letter; tenants are partitions inside one.
WEAVIATE_COLLECTIONS: dict[StoreNamespace, str] = {
    StoreNamespace.KNOWLEDGE: "AgentPlatformChunks",
    StoreNamespace.MEMORY: "AgentPlatformMemories",
}


def embedded_root(settings: Settings, namespace: StoreNamespace) -> Path:
    """The directory whose sub-directories are the namespace's tenants."""
    if namespace is StoreNamespace.MEMORY:
        return settings.memory_index_dir
    return settings.index_dir


def embedded_snapshots_dir(settings: Settings, namespace: StoreNamespace) -> Path:
    """Where the namespace's snapshots live (memories are never restored over knowledge)."""
    if namespace is StoreNamespace.MEMORY:
        return settings.home_dir / "memory-snapshots"
    return settings.snapshots_dir


def weaviate_collection(namespace: StoreNamespace) -> str:
    return WEAVIATE_COLLECTIONS[StoreNamespace(namespace)]
