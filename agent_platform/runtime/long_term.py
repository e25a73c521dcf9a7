"""Long-term memory: durable facts in the vector store, beside (never inside) the knowledge index.

Memories of tenant `acme` live in the vector-store tenant `acme__memory`, so a knowledge search
of `acme` never returns a memory and re-indexing the knowledge base never deletes one. Tenant
names are limited to 63 characters: when `<tenant>__memory` would be longer, the namespace is the
tenant's first 46 characters, `-`, 8 hex digits of its SHA-256, then `__memory` (63 in all), which
is still unique per tenant. Each memory is one record (the fact's text, its embedding, and
metadata `user`, `kind`, `created_at`); recall filters on the user, so users never see each
other's memories.

Which facts are worth keeping: what a user explicitly asks the agent to remember ("remember that
my region is eu-west-1", "please remember: …"). Anything else stays in the conversation and
working memory, which expire.

Encryption at rest: the text is sealed with the tenant's data key (`cipher`) before it reaches the
vector store and opened on recall; the embedding stays plain (similarity search needs it).
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Mapping

import numpy as np

from agent_platform.knowledge.embedder import Embedder
from agent_platform.runtime.memory.base import JSONValue, RecalledMemory
from agent_platform.security.crypto.cipher import PLAINTEXT, ValueCipher
from agent_platform.tenants import MAX_TENANT_NAME_LENGTH, validate_tenant_name
from agent_platform.vectorstore.base import ChunkRecord, SearchMode, VectorStore

MEMORY_SUFFIX = "__memory"
DEFAULT_MIN_SCORE = 0.6  # vector scale (1 + cosine) / 2; see retrieval.py for the calibration
_REMEMBER = re.compile(r"^\s*(?:please\s+)?remember(?:\s+that|\s*:)?\s+(?P<fact>.+)$", re.I | re.S)


def memory_tenant(tenant: str) -> str:
    """The vector-store tenant holding `tenant`'s long-term memories (a valid tenant name)."""
    validate_tenant_name(tenant)
    name = tenant + MEMORY_SUFFIX
    if len(name) > MAX_TENANT_NAME_LENGTH:
        digest = hashlib.sha256(tenant.encode()).hexdigest()[:8]
        keep = MAX_TENANT_NAME_LENGTH - len(MEMORY_SUFFIX) - len(digest) - 1
        name = f"{tenant[:keep]}-{digest}{MEMORY_SUFFIX}"
    return validate_tenant_name(name)


def fact_worth_keeping(text: str) -> str | None:
    """The fact to store when the user asks the agent to remember something, else None."""
    match = _REMEMBER.match(text)
    if not match:
        return None
    fact = " ".join(match["fact"].split()).rstrip()
    return fact or None


class VectorLongTermMemory:
    """`LongTermMemory` over a `VectorStore` and the knowledge embedder."""

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
        self, tenant: str, user: str, text: str, metadata: Mapping[str, JSONValue] | None = None
    ) -> str:
        if not text or not text.strip():
            raise ValueError("text: a memory must not be empty")
        if not user:
            raise ValueError("user: must be a non-empty id")
        memory_id = f"mem-{uuid.uuid4().hex}"
        meta = {k: v for k, v in dict(metadata or {}).items() if isinstance(v, str | int | float)}
        meta |= {"user": user, "kind": str(meta.get("kind", "fact")), "created_at": time.time()}
        record = ChunkRecord(
            chunk_id=memory_id,
            document_id=memory_id,
            source=f"memory:{user}",
            text=self.cipher.seal(tenant, self.TABLE, memory_id, text.strip()),
            vector=self.embedder.embed_query(text.strip()),
            metadata=meta,
        )
        self.store.upsert(memory_tenant(tenant), [record])
        return memory_id

    def recall(self, tenant: str, user: str, query: str, k: int = 5) -> list[RecalledMemory]:
        return self.recall_by_vector(tenant, user, query, self.embedder.embed_query(query), k)

    def recall_by_vector(
        self, tenant: str, user: str, query: str, vector: np.ndarray, k: int = 5
    ) -> list[RecalledMemory]:
        """`recall` with the query already embedded (the runtime reuses its retrieval vector)."""
        hits = self.store.search(
            memory_tenant(tenant),
            query_text=query,
            query_vector=vector,
            k=k,
            mode=SearchMode.VECTOR,
            filters={"user": user},
            min_score=self.min_score or None,
        )
        return [
            RecalledMemory(
                self.cipher.open(tenant, self.TABLE, h.chunk_id, h.text),
                h.score,
                {**h.metadata, "id": h.chunk_id},
            )
            for h in hits
        ]

    def forget(self, tenant: str, memory_id: str) -> bool:
        return self.store.delete(memory_tenant(tenant), [memory_id]) > 0
