"""The platform `Embedder` as a LangChain `Embeddings`."""

from __future__ import annotations

import asyncio

from langchain_core.embeddings import Embeddings

from agent_platform.knowledge.embedder import Embedder


class PlatformEmbeddings(Embeddings):
    """LangChain `Embeddings` over the platform `Embedder` (documents use its shared cache).

    Vectors are unit-norm float lists of the model's dimension. The model runs locally and is
    CPU/GPU-bound, so the async methods run it in a worker thread: the event loop stays free.
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.embedder.embed_texts(list(texts)).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        if not text or not text.strip():
            raise ValueError("embed_query: text is empty")
        vector: list[float] = self.embedder.embed_query(text).tolist()
        return vector

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await asyncio.to_thread(self.embed_query, text)
