"""One tenant of a platform `VectorStore` as a LangChain `VectorStore`.

LangChain's contract: a document's metadata comes back exactly as stored (nested JSON included),
its id is `Document.id`, and scores come only from the `*_with_score` methods. The record fields
the platform needs are derived, not added: `source` and `document_id` are taken from metadata
keys of those names when they are non-empty strings (so `filter={"source": ...}` works as LangChain
users expect), otherwise they are "langchain" and the chunk id.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore as LCVectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from agent_platform.knowledge.embedder import Embedder
from agent_platform.langchain_adapters.embeddings import PlatformEmbeddings
from agent_platform.vectorstore.base import ChunkRecord, SearchHit, SearchMode, VectorStore

DEFAULT_SOURCE = "langchain"


def _document(record: ChunkRecord | SearchHit) -> Document:
    return Document(page_content=record.text, metadata=dict(record.metadata), id=record.chunk_id)


def _field(metadata: dict[str, Any], key: str, default: str) -> str:
    value = metadata.get(key)
    return value if isinstance(value, str) and value.strip() else default


class PlatformVectorStore(LCVectorStore):
    """One tenant of a platform `VectorStore`, seen through LangChain's interface.

    Text queries use `mode` (hybrid by default: the best ranking the store offers; `mode=` per
    call overrides it); queries by vector use vector search. `filter=` takes the store's equality
    filters. Async methods await the embeddings' own async methods and run the store's blocking
    I/O (SQLite, hnswlib or the Weaviate client) in a worker thread.
    """

    def __init__(
        self,
        store: VectorStore,
        embedding: Embeddings | Embedder,
        tenant: str,
        *,
        mode: SearchMode = SearchMode.HYBRID,
    ) -> None:
        self.store = store
        self._embedding = (
            PlatformEmbeddings(embedding) if isinstance(embedding, Embedder) else embedding
        )
        self.tenant = tenant
        self.mode = SearchMode(mode)

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    # --- writes ------------------------------------------------------------------------------
    @staticmethod
    def _inputs(
        texts: Iterable[str],
        metadatas: Sequence[dict[str, Any] | None] | None,
        ids: Sequence[object] | None,
    ) -> tuple[list[str], list[dict[str, Any]], list[str]]:
        """Texts, metadata copies and ids, with a fresh id wherever none was given."""
        texts = list(texts)
        given_metas = metadatas if metadatas is not None else [None] * len(texts)
        metas = [dict(m or {}) for m in given_metas]
        given = list(ids) if ids is not None else [None] * len(texts)
        if not (len(texts) == len(metas) == len(given)):
            raise ValueError(
                f"add_texts: {len(texts)} texts, {len(metas)} metadatas and {len(given)} ids "
                "must have the same length"
            )
        out = []
        for i, chunk_id in enumerate(given):
            if chunk_id is not None and not isinstance(chunk_id, str):
                raise ValueError(
                    f"add_texts: ids[{i}] must be a string or None, got {type(chunk_id).__name__}"
                )
            out.append(chunk_id or uuid.uuid4().hex)
        return texts, metas, out

    @staticmethod
    def _records(
        texts: list[str],
        metadatas: list[dict[str, Any]],
        ids: list[str],
        vectors: list[list[float]],
    ) -> list[ChunkRecord]:
        return [
            ChunkRecord(
                chunk_id=chunk_id,
                document_id=_field(meta, "document_id", chunk_id),
                source=_field(meta, "source", DEFAULT_SOURCE),
                text=text,
                vector=np.asarray(vector, dtype=np.float32),
                metadata=meta,
            )
            for text, meta, chunk_id, vector in zip(texts, metadatas, ids, vectors, strict=True)
        ]

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str | None] | None = None,  # type: ignore[override]  # None: a fresh id
        **kwargs: Any,
    ) -> list[str]:
        """Adds or replaces by id; `None` ids get a fresh uuid. Metadata is stored as given."""
        texts, metas, filled = self._inputs(texts, metadatas, ids)
        if not texts:
            return []
        vectors = self._embedding.embed_documents(texts)
        self.store.upsert(self.tenant, self._records(texts, metas, filled, vectors))
        return filled

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str | None] | None = None,  # type: ignore[override]  # None: a fresh id
        **kwargs: Any,
    ) -> list[str]:
        texts, metas, filled = self._inputs(texts, metadatas, ids)
        if not texts:
            return []
        vectors = await self._embedding.aembed_documents(texts)
        records = self._records(texts, metas, filled, vectors)
        await asyncio.to_thread(self.store.upsert, self.tenant, records)
        return filled

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Deletes these ids (unknown ones are ignored); without ids, every document of the
        tenant (the tenant itself stays)."""
        if ids is None:
            ids = list(self.store.indexed_metadata(self.tenant))
        self.store.delete(self.tenant, ids)
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        return await asyncio.to_thread(self.delete, ids)

    # --- reads -------------------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents in the order of `ids`; unknown ids are skipped."""
        return [_document(r) for r in self.store.get_records(self.tenant, ids)]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return await asyncio.to_thread(self.get_by_ids, ids)

    def _mode(self, kwargs: dict[str, Any]) -> SearchMode:
        return SearchMode(kwargs.pop("mode", self.mode))

    def _search(
        self, query: str, vector: np.ndarray | None, k: int, mode: SearchMode, **kwargs: Any
    ) -> list[SearchHit]:
        return self.store.search(
            self.tenant,
            query_text=query,
            query_vector=vector,
            k=k,
            mode=mode,
            filters=kwargs.get("filter"),
            min_score=kwargs.get("min_score", kwargs.get("score_threshold")),
        )

    def _query_vector(self, query: str, mode: SearchMode) -> np.ndarray | None:
        if mode is SearchMode.KEYWORD:
            return None
        return np.asarray(self._embedding.embed_query(query), dtype=np.float32)

    async def _aquery_vector(self, query: str, mode: SearchMode) -> np.ndarray | None:
        if mode is SearchMode.KEYWORD:
            return None
        return np.asarray(await self._embedding.aembed_query(query), dtype=np.float32)

    def similarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Scores are in [0, 1], higher is better, whatever the mode."""
        mode = self._mode(kwargs)
        hits = self._search(query, self._query_vector(query, mode), k, mode, **kwargs)
        return [(_document(h), h.score) for h in hits]

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        mode = self._mode(kwargs)
        vector = await self._aquery_vector(query, mode)
        hits = await asyncio.to_thread(self._search, query, vector, k, mode, **kwargs)
        return [(_document(h), h.score) for h in hits]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in await self.asimilarity_search_with_score(query, k, **kwargs)]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        vector = np.asarray(embedding, dtype=np.float32)
        return [_document(h) for h in self._search("", vector, k, SearchMode.VECTOR, **kwargs)]

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        return await asyncio.to_thread(self.similarity_search_by_vector, embedding, k, **kwargs)

    # --- maximal marginal relevance ----------------------------------------------------------
    def _mmr(
        self,
        query: str,
        vector: np.ndarray,
        mode: SearchMode,
        k: int,
        fetch_k: int,
        lambda_mult: float,
        **kwargs: Any,
    ) -> list[Document]:
        """`fetch_k` candidates from the store, then LangChain's MMR over their stored vectors."""
        if not 0.0 <= lambda_mult <= 1.0:
            raise ValueError(f"lambda_mult must be in [0, 1], got {lambda_mult!r}")
        hits = self._search(query, vector, max(fetch_k, k), mode, **kwargs)
        records = self.store.get_records(self.tenant, [h.chunk_id for h in hits])
        if not records:
            return []
        stored: list[Any] = [r.vector for r in records]  # ndarrays; MMR takes array-likes
        picked = maximal_marginal_relevance(vector, stored, lambda_mult=lambda_mult, k=k)
        return [_document(records[i]) for i in picked]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """Candidates come from the adapter's search mode; diversity is judged on vectors."""
        mode = self._mode(kwargs)
        vector = np.asarray(self._embedding.embed_query(query), dtype=np.float32)
        return self._mmr(query, vector, mode, k, fetch_k, lambda_mult, **kwargs)

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        mode = self._mode(kwargs)
        vector = np.asarray(await self._embedding.aembed_query(query), dtype=np.float32)
        return await asyncio.to_thread(
            self._mmr, query, vector, mode, k, fetch_k, lambda_mult, **kwargs
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        vector = np.asarray(embedding, dtype=np.float32)
        return self._mmr("", vector, SearchMode.VECTOR, k, fetch_k, lambda_mult, **kwargs)

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        return await asyncio.to_thread(
            self.max_marginal_relevance_search_by_vector,
            embedding,
            k,
            fetch_k,
            lambda_mult,
            **kwargs,
        )

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return lambda score: score  # our scores are already in [0, 1], higher is better

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        store: VectorStore | None = None,
        tenant: str = "default",
        **kwargs: Any,
    ) -> PlatformVectorStore:
        """Without `store`, a private embedded store in a temporary directory is used."""
        if store is None:
            from agent_platform.vectorstore.embedded import EmbeddedVectorStore

            store = EmbeddedVectorStore(Path(tempfile.mkdtemp(prefix="agent-platform-lc-")))
        vs = cls(store, embedding, tenant, **kwargs)
        vs.add_texts(texts, metadatas, ids=cast("list[str | None] | None", ids))
        return vs
