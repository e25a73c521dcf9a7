"""Long-term memory: durable facts in a vector-store namespace of their own.

Memories live in the memory namespace (`vectorstore/namespaces.py`): under `<home>/memory-index`
with the embedded store, in the `AgentPlatformMemories` collection with Weaviate. Inside it, the
partition is the tenant's own name. No tenant name reaches that namespace: the knowledge commands
(`ingest`, `search`, `index …`) open the knowledge namespace only, so a knowledge search never
returns a memory and re-indexing, rebuilding or restoring any tenant never touches one. A memory
is only read through the runtime, after the gatekeeper has applied the tenant's access rules.

Each memory is one record (the fact's text, its embedding, and metadata `user`, `kind`, `shared`,
`created_at`). Recall returns the asking user's own memories, plus those explicitly stored with
`shared=True` for every user of the tenant; never another user's private ones.

Which facts are worth keeping: what a user explicitly asks the agent to remember ("remember that
my region is eu-west-1", "please remember: …"). Anything else stays in the conversation and
working memory, which expire.

Encryption at rest: the text is sealed with the tenant's data key (`cipher`) before it reaches the
vector store and opened on recall; the embedding stays plain (similarity search needs it).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping

import numpy as np

from agent_platform.knowledge.embedder import Embedder
from agent_platform.runtime.memory.base import JSONValue, RecalledMemory
from agent_platform.security.crypto.cipher import PLAINTEXT, ValueCipher
from agent_platform.tenants import validate_tenant_name
from agent_platform.vectorstore.base import ChunkRecord, SearchMode, VectorStore

DEFAULT_MIN_SCORE = 0.6  # vector scale (1 + cosine) / 2; see retrieval.py for the calibration
_REMEMBER = re.compile(r"^\s*(?:please\s+)?remember(?:\s+that|\s*:)?\s+(?P<fact>.+)$", re.I | re.S)


def fact_worth_keeping(text: str) -> str | None:
    """The fact to store when the user asks the agent to remember something, else None."""
    match = _REMEMBER.match(text)
    if not match:
        return None
    fact = " ".join(match["fact"].split()).rstrip()
    return fact or None


class VectorLongTermMemory:
    """`LongTermMemory` over a memory-namespace `VectorStore` and the knowledge embedder.

    `store` must be opened on `StoreNamespace.MEMORY` (`open_vector_store(settings, MEMORY)`),
    never on the knowledge namespace: the two would then share tenants again.
    """

    TABLE = "long_term_memory"

    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        *,
        min_score: float = 0.0,
        cipher: ValueCipher = PLAINTEXT,
    ) -> None:
        self.cipher = cipher
        self.store = store
        self.embedder = embedder
        self.min_score = min_score

    def remember(
        self,
        tenant: str,
        user: str,
        text: str,
        metadata: Mapping[str, JSONValue] | None = None,
        *,
        shared: bool = False,
    ) -> str:
        """Store a fact for `user`; `shared=True` lets every user of the tenant recall it."""
        validate_tenant_name(tenant)
        if not text or not text.strip():
            raise ValueError("text: a memory must not be empty")
        if not user:
            raise ValueError("user: must be a non-empty id")
        memory_id = f"mem-{uuid.uuid4().hex}"
        meta = {k: v for k, v in dict(metadata or {}).items() if isinstance(v, str | int | float)}
        meta |= {
            "user": user,
            "kind": str(meta.get("kind", "fact")),
            "shared": bool(shared),
            "created_at": time.time(),
        }
        record = ChunkRecord(
            chunk_id=memory_id,
            document_id=memory_id,
            source=f"memory:{user}",
            text=self.cipher.seal(tenant, self.TABLE, memory_id, text.strip()),
            vector=self.embedder.embed_query(text.strip()),
            metadata=meta,
        )
        self.store.upsert(tenant, [record])
        return memory_id

    def recall(self, tenant: str, user: str, query: str, k: int = 5) -> list[RecalledMemory]:
        return self.recall_by_vector(tenant, user, query, self.embedder.embed_query(query), k)

    def recall_by_vector(
        self, tenant: str, user: str, query: str, vector: np.ndarray, k: int = 5
    ) -> list[RecalledMemory]:
        """`recall` with the query already embedded (the runtime reuses its retrieval vector):
        the user's own memories and the tenant's shared ones, best first."""
        validate_tenant_name(tenant)
        if not user:
            raise ValueError("user: must be a non-empty id")
        found = {}
        for filters in ({"user": user}, {"shared": True}):
            for hit in self.store.search(
                tenant,
                query_text=query,
                query_vector=vector,
                k=k,
                mode=SearchMode.VECTOR,
                filters=filters,
                min_score=self.min_score or None,
            ):
                found[hit.chunk_id] = hit
        hits = sorted(found.values(), key=lambda h: -h.score)[:k]
        return [
            RecalledMemory(
                self.cipher.open(tenant, self.TABLE, h.chunk_id, h.text),
                h.score,
                {**h.metadata, "id": h.chunk_id},
            )
            for h in hits
        ]

    def forget(self, tenant: str, memory_id: str) -> bool:
        return self.store.delete(validate_tenant_name(tenant), [memory_id]) > 0

    def close(self) -> None:
        self.store.close()
