"""LangChain's standard embeddings suites against `PlatformEmbeddings` (the real MiniLM model)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from agent_platform.langchain_adapters import PlatformEmbeddings


class _SessionEmbedder:
    """Hands the session's embedder to the suites, which build the model from parameters."""

    @pytest.fixture(autouse=True)
    def _session_embedder(self, embedder) -> None:
        self._embedder = embedder

    @property
    def embeddings_class(self) -> type[PlatformEmbeddings]:
        return PlatformEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"embedder": self._embedder}


class TestPlatformEmbeddingsUnit(_SessionEmbedder, EmbeddingsUnitTests):
    pass


class TestPlatformEmbeddingsIntegration(_SessionEmbedder, EmbeddingsIntegrationTests):
    pass
