"""Memory records and the protocol of each layer.

Layers, shortest-lived first:

* short-term (`ShortTermMemory`): the recent messages of a session; the whole buffer expires
  `ttl_s` (1 h) after its last write and keeps at most `max_items` entries (oldest dropped).
* working (`WorkingMemory`): facts a session or user accumulates (key → JSON value), kept
  `retention_s` (24 h) after their last update, indexed by tenant, user and session.
* conversation state (`ConversationStore`): the versioned transcript of a session; every turn makes
  a new version and `rollback` restores an earlier one (as a new version, so history is never lost).
* long-term (`LongTermMemory`): durable memories in the tenant's vector store (protocol only here).

Each layer has a local backend (SQLite) and a production one (Redis or PostgreSQL) with the same
semantics; the contract tests run the same cases against both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

JSONValue = Any  # anything json.dumps accepts


@dataclass(frozen=True)
class MemoryScope:
    """Who a memory belongs to: tenant, user and session (all required, non-empty)."""

    tenant: str
    user: str
    session: str

    def __post_init__(self) -> None:
        for name in ("tenant", "user", "session"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name}: must be a non-empty string, got {value!r}")

    @property
    def key(self) -> str:
        """A collision-free string key (each part percent-encoded, joined by ':')."""
        return ":".join(quote(p, safe="") for p in (self.tenant, self.user, self.session))


ROLES = frozenset({"system", "user", "assistant", "tool"})


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role: must be one of {sorted(ROLES)}, got {role!r}")
    return role


@dataclass(frozen=True)
class MemoryItem:
    """One short-term entry (a message of the session)."""

    role: str
    content: str
    created_at: float
    metadata: Mapping[str, JSONValue] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkingMemoryEntry:
    scope: MemoryScope
    key: str
    value: JSONValue
    updated_at: float
    expires_at: float


@dataclass(frozen=True)
class Turn:
    """One message of a conversation."""

    role: str
    content: str
    metadata: Mapping[str, JSONValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_role(self.role)
        if not isinstance(self.content, str):
            raise ValueError(f"content: must be a string, got {type(self.content).__name__}")

    def to_dict(self) -> dict[str, JSONValue]:
        return {"role": self.role, "content": self.content, "metadata": dict(self.metadata)}

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> Turn:
        return cls(str(data["role"]), str(data["content"]), dict(data.get("metadata") or {}))

    def to_message(self) -> BaseMessage:
        if self.role == "user":
            return HumanMessage(self.content)
        if self.role == "assistant":
            return AIMessage(self.content)
        if self.role == "system":
            return SystemMessage(self.content)
        return ToolMessage(self.content, tool_call_id=str(self.metadata.get("tool_call_id", "")))


@dataclass(frozen=True)
class ConversationState:
    """A session's transcript at one version (version 0: nothing said yet)."""

    scope: MemoryScope
    version: int
    turns: tuple[Turn, ...]
    created_at: float = 0.0
    restored_from: int | None = None

    def messages(self) -> list[BaseMessage]:
        return [t.to_message() for t in self.turns]


@dataclass(frozen=True)
class VersionInfo:
    version: int
    created_at: float
    turn_count: int
    restored_from: int | None


class VersionNotFoundError(LookupError):
    """A conversation version that does not exist (or has been purged)."""

    def __init__(self, scope: MemoryScope, version: int) -> None:
        super().__init__(
            f"version: session {scope.session!r} of tenant {scope.tenant!r} "
            f"has no version {version}"
        )


# (role, content) or (role, content, metadata)
ShortTermEntry = tuple[str, str] | tuple[str, str, Mapping[str, JSONValue] | None]


@runtime_checkable
class ShortTermMemory(Protocol):
    ttl_s: float
    max_items: int

    def add(
        self,
        scope: MemoryScope,
        role: str,
        content: str,
        metadata: Mapping[str, JSONValue] | None = None,
    ) -> None:
        """Append an entry; refreshes the buffer's TTL and drops the oldest beyond the cap."""
        ...

    def add_many(self, scope: MemoryScope, entries: Sequence[ShortTermEntry]) -> None:
        """`add` for several entries, in order, in one write."""
        ...

    def recent(self, scope: MemoryScope, limit: int | None = None) -> list[MemoryItem]:
        """Unexpired entries, oldest first (the newest `limit` when given)."""
        ...

    def ttl_remaining(self, scope: MemoryScope) -> float | None:
        """Seconds until the buffer expires, or None when there is none."""
        ...

    def clear(self, scope: MemoryScope) -> None: ...


@runtime_checkable
class WorkingMemory(Protocol):
    retention_s: float

    def put(self, scope: MemoryScope, key: str, value: JSONValue) -> None:
        """Insert or replace; the entry is kept `retention_s` after this call."""
        ...

    def get(self, scope: MemoryScope, key: str) -> JSONValue | None: ...

    def entries(
        self, tenant: str, user: str | None = None, session: str | None = None
    ) -> list[WorkingMemoryEntry]:
        """Unexpired entries of a tenant, optionally narrowed to a user and session."""
        ...

    def delete(self, scope: MemoryScope, key: str) -> bool: ...

    def purge_expired(self) -> int:
        """Delete expired entries; returns how many."""
        ...


@runtime_checkable
class ConversationStore(Protocol):
    retention_s: float

    def append(self, scope: MemoryScope, turns: Sequence[Turn]) -> ConversationState:
        """Add turns as one new version (a user message and its answer, say)."""
        ...

    def current(self, scope: MemoryScope) -> ConversationState: ...

    def get_version(self, scope: MemoryScope, version: int) -> ConversationState: ...

    def versions(self, scope: MemoryScope) -> list[VersionInfo]: ...

    def rollback(self, scope: MemoryScope, version: int) -> ConversationState:
        """Make the state of `version` current again, as a new version."""
        ...

    def purge_expired(self) -> int:
        """Delete sessions idle for longer than `retention_s`; returns versions deleted."""
        ...


@dataclass(frozen=True)
class RecalledMemory:
    text: str
    score: float
    metadata: Mapping[str, JSONValue] = field(default_factory=dict)


@runtime_checkable
class LongTermMemory(Protocol):
    """Durable memories, stored in the tenant's vector store (implemented with the vector store)."""

    def remember(
        self, tenant: str, user: str, text: str, metadata: Mapping[str, JSONValue] | None = None
    ) -> str:
        """Store a memory; returns its id."""
        ...

    def recall(self, tenant: str, user: str, query: str, k: int = 5) -> list[RecalledMemory]:
        """The `k` memories most relevant to `query`, best first, scores in [0, 1]."""
        ...

    def forget(self, tenant: str, memory_id: str) -> bool: ...


def validate_key(key: str) -> str:
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"key: must be a non-empty string, got {key!r}")
    return key
