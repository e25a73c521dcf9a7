"""The vector store: an abstract resource with an embedded and a Weaviate implementation.

Assets type-hint `VectorStoreResource`; the composition root picks the subclass from settings.
"""

from abc import abstractmethod
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from agent_platform.vectorstore.base import VectorStore


class VectorStoreResource(dg.ConfigurableResource):
    """Opens the backend once per run; snapshots go to `snapshots_dir`."""

    snapshots_dir: str
    snapshot_retention_days: int = 30

    _store: VectorStore | None = PrivateAttr(default=None)

    @abstractmethod
    def open_store(self) -> VectorStore:
        """Connect to the backend."""

    @property
    def backend_name(self) -> str:
        return self.store.backend_name

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._store = self.open_store()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.close()

    @property
    def store(self) -> VectorStore:
        if self._store is None:
            raise RuntimeError("VectorStoreResource used outside a Dagster execution")
        return self._store

    @property
    def snapshots_path(self) -> Path:
        return Path(self.snapshots_dir)


class EmbeddedVectorStoreResource(VectorStoreResource):
    """The embedded on-disk index (no server), one directory per tenant under `index_dir`."""

    index_dir: str

    def open_store(self) -> VectorStore:
        from agent_platform.vectorstore.embedded import EmbeddedVectorStore

        return EmbeddedVectorStore(Path(self.index_dir))


class WeaviateVectorStoreResource(VectorStoreResource):
    """A Weaviate cluster with one multi-tenant collection; tenants map to Weaviate tenants."""

    url: str
    grpc_port: int = 50051
    api_key: str | None = None

    def open_store(self) -> VectorStore:
        from agent_platform.vectorstore.weaviate_store import WeaviateVectorStore

        return WeaviateVectorStore.connect(
            url=self.url, grpc_port=self.grpc_port, api_key=self.api_key
        )
