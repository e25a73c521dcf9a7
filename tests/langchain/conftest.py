"""Fixtures for the LangChain suites: one store per backend for the session and a fresh tenant per
test, dropped afterwards (the suites want an empty store per test; a tenant is the cheap way)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_platform.vectorstore.base import VectorStore

WEAVIATE_SKIP = "WEAVIATE_URL is not set: Weaviate LangChain tests need a running server"


@pytest.fixture(scope="session")
def lc_embedded_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VectorStore]:
    from agent_platform.vectorstore.embedded import EmbeddedVectorStore

    home: Path = tmp_path_factory.mktemp("langchain-home")
    store = EmbeddedVectorStore(home / "index", snapshots_dir=home / "snapshots")
    yield store
    store.close()


@pytest.fixture(scope="session")
def lc_weaviate_store() -> Iterator[VectorStore]:
    url = os.environ.get("WEAVIATE_URL")
    if not url:
        print(WEAVIATE_SKIP)
        pytest.skip(WEAVIATE_SKIP)
    from agent_platform.vectorstore.weaviate_store import WeaviateVectorStore

    name = f"LangChain{uuid.uuid4().hex[:10]}"
    store = WeaviateVectorStore(url, collection=name)
    yield store
    store._client.collections.delete(name)
    store.close()


@pytest.fixture(params=["embedded", "weaviate"])
def lc_store(request: pytest.FixtureRequest) -> VectorStore:
    """The same LangChain tests run against each backend."""
    return request.getfixturevalue(f"lc_{request.param}_store")


@pytest.fixture
def lc_tenant(lc_store: VectorStore) -> Iterator[str]:
    tenant = f"lc-{uuid.uuid4().hex[:12]}"
    yield tenant
    lc_store.drop_tenant(tenant)
