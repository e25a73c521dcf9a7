"""LangChain's standard vector store suite against `PlatformVectorStore`, sync and async, with
`get_by_ids`, on each store backend: once with the suite's own deterministic embeddings (as
LangChain's partner packages run it) and once with the real MiniLM model through
`PlatformEmbeddings`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from agent_platform.langchain_adapters import PlatformEmbeddings, PlatformVectorStore


class TestPlatformVectorStore(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, lc_store, lc_tenant) -> Iterator[PlatformVectorStore]:
        """An empty tenant; the conftest drops it afterwards."""
        yield PlatformVectorStore(lc_store, self.get_embeddings(), lc_tenant)

    @property
    def has_get_by_ids(self) -> bool:
        return True


class TestPlatformVectorStoreMiniLM(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, lc_store, lc_tenant, embedder) -> Iterator[PlatformVectorStore]:
        yield PlatformVectorStore(lc_store, PlatformEmbeddings(embedder), lc_tenant)

    @property
    def has_get_by_ids(self) -> bool:
        return True
