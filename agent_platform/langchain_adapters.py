"""LangChain adapters: our Embedder as `Embeddings`, our VectorStore (one tenant) as `VectorStore`.

Why: agents and chains written against LangChain's interfaces (retrievers, `as_retriever()`) then
run on the platform's cached embeddings and per-tenant indexes, with the same score conventions
(every score in [0, 1], higher is better), instead of a second, unmanaged index.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore as LCVectorStore

from agent_platform.knowledge.embedder import Embedder
from agent_platform.vectorstore.base import ChunkRecord, SearchHit, SearchMode, VectorStore

RESERVED = ("chunk_id", "document_id", "source", "score")


class PlatformEmbeddings(Embeddings):
    """LangChain `Embeddings` over the platform `Embedder` (documents use its shared cache)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_texts(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        if not text or not text.strip():
            raise ValueError("embed_query: text is empty")
        return self.embedder.embed_query(text).tolist()


def _document(hit: SearchHit) -> Document:
    meta = dict(hit.metadata)
    meta.update(
        chunk_id=hit.chunk_id, document_id=hit.document_id, source=hit.source, score=hit.score
    )
    return Document(page_content=hit.text, metadata=meta, id=hit.chunk_id)


class PlatformVectorStore(LCVectorStore):
    """One tenant of a platform `VectorStore`, seen through LangChain's interface.

    Text queries use `mode` (hybrid by default: the best ranking the store offers); queries by
    vector use vector search. `filter=` takes the store's equality filters.
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

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """`document_id` and `source` may be given in a text's metadata; the rest is metadata."""
        texts = list(texts)
        metadatas = metadatas or [{} for _ in texts]
        ids = ids or [uuid.uuid4().hex for _ in texts]
        if not (len(texts) == len(metadatas) == len(ids)):
            raise ValueError(
                f"add_texts: {len(texts)} texts, {len(metadatas)} metadatas and {len(ids)} ids "
                "must have the same length"
            )
        vectors = self._embedding.embed_documents(texts)
        records = []
        for text, meta, chunk_id, vector in zip(texts, metadatas, ids, vectors, strict=True):
            meta = dict(meta)
            document_id = str(meta.pop("document_id", chunk_id))
            source = str(meta.pop("source", "langchain"))
            for key in ("chunk_id", "score"):
                meta.pop(key, None)
            records.append(
                ChunkRecord(
                    chunk_id=chunk_id,
                    document_id=document_id,
                    source=source,
                    text=text,
                    vector=np.asarray(vector, dtype=np.float32),
                    metadata=meta,
                )
            )
        self.store.upsert(self.tenant, records)
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        if ids is None:
            raise ValueError("delete: give the ids to delete (deleting everything is drop_tenant)")
        self.store.delete(self.tenant, ids)
        return True

    def _search(
        self, query: str, vector: np.ndarray, k: int, mode: SearchMode, **kwargs: Any
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

    def similarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        vector = np.asarray(self._embedding.embed_query(query), dtype=np.float32)
        mode = SearchMode(kwargs.pop("mode", self.mode))
        return [(_document(h), h.score) for h in self._search(query, vector, k, mode, **kwargs)]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        vector = np.asarray(embedding, dtype=np.float32)
        hits = self._search("", vector, k, SearchMode.VECTOR, **kwargs)
        return [_document(h) for h in hits]

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
        vs.add_texts(texts, metadatas, ids=ids)
        return vs
