"""LangChain adapters: our Embedder as `Embeddings`, our VectorStore (one tenant) as `VectorStore`.

Why: agents and chains written against LangChain's interfaces (retrievers, `as_retriever()`) then
run on the platform's cached embeddings and per-tenant indexes, with the same score conventions
(every score in [0, 1], higher is better), instead of a second, unmanaged index. Both pass
LangChain's standard test suites (tests/langchain/).
"""

from agent_platform.langchain_adapters.embeddings import PlatformEmbeddings
from agent_platform.langchain_adapters.vectorstore import PlatformVectorStore

__all__ = ["PlatformEmbeddings", "PlatformVectorStore"]
