"""Memory layers of the runtime; `build_*` pick the backend the settings call for.

Locally all three SQL-backed layers live in one file, `<home>/runtime/working.sqlite`, opened once
per process, so `write_together` can commit a request's writes to them as one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from agent_platform.runtime.config import RuntimeSettings
from agent_platform.runtime.memory._db import SQLiteDatabase
from agent_platform.runtime.memory.base import (
    ConversationState,
    ConversationStore,
    LongTermMemory,
    MemoryItem,
    MemoryScope,
    RecalledMemory,
    ShortTermEntry,
    ShortTermMemory,
    Turn,
    VersionInfo,
    VersionNotFoundError,
    WorkingMemory,
    WorkingMemoryEntry,
)
from agent_platform.runtime.memory.conversation import (
    PostgresConversationStore,
    SQLiteConversationStore,
)
from agent_platform.runtime.memory.short_term import RedisShortTermMemory, SQLiteShortTermMemory
from agent_platform.runtime.memory.working import PostgresWorkingMemory, SQLiteWorkingMemory
from agent_platform.security.crypto import value_cipher
from agent_platform.security.private_files import private_dir
from agent_platform.settings import Settings

__all__ = [
    "ConversationState",
    "ConversationStore",
    "LongTermMemory",
    "MemoryItem",
    "MemoryScope",
    "PostgresConversationStore",
    "PostgresWorkingMemory",
    "RecalledMemory",
    "RedisShortTermMemory",
    "SQLiteConversationStore",
    "SQLiteShortTermMemory",
    "SQLiteWorkingMemory",
    "ShortTermEntry",
    "ShortTermMemory",
    "Turn",
    "VersionInfo",
    "VersionNotFoundError",
    "WorkingMemory",
    "WorkingMemoryEntry",
    "build_conversation_store",
    "build_short_term_memory",
    "build_working_memory",
    "write_together",
]


def _memory_dir(settings: Settings) -> Path:
    private_dir(settings.home_dir)
    return private_dir(settings.home_dir / "runtime")


def build_short_term_memory(settings: Settings, runtime: RuntimeSettings) -> ShortTermMemory:
    """Redis when configured (or settings.redis_url is set), else SQLite in working.sqlite."""
    m = runtime.memory
    backend = m.short_term_backend or ("redis" if settings.redis_url else "local")
    if backend == "redis":
        if not settings.redis_url:
            raise ValueError("memory.short_term_backend 'redis' needs AGENT_PLATFORM_REDIS_URL")
        return RedisShortTermMemory(
            settings.redis_url,
            ttl_s=m.short_term_ttl_s,
            max_items=m.short_term_max_items,
            key_prefix=m.redis_key_prefix,
            cipher=value_cipher(settings),
        )
    return SQLiteShortTermMemory(
        _memory_dir(settings) / "working.sqlite",
        ttl_s=m.short_term_ttl_s,
        max_items=m.short_term_max_items,
        cipher=value_cipher(settings),
    )


def _working_backend(settings: Settings, runtime: RuntimeSettings) -> str:
    backend = runtime.memory.working_backend or ("postgres" if settings.postgres_url else "sqlite")
    if backend == "postgres" and not settings.postgres_url:
        raise ValueError("memory.working_backend 'postgres' needs AGENT_PLATFORM_POSTGRES_URL")
    return backend


def build_working_memory(settings: Settings, runtime: RuntimeSettings) -> WorkingMemory:
    """PostgreSQL when configured (or settings.postgres_url is set), else SQLite."""
    m = runtime.memory
    if _working_backend(settings, runtime) == "postgres":
        assert settings.postgres_url is not None  # nosec B101  # narrows a type for mypy; the invariant holds by construction
        return PostgresWorkingMemory(
            settings.postgres_url,
            schema=m.postgres_schema,
            retention_s=m.working_retention_s,
            cipher=value_cipher(settings),
        )
    return SQLiteWorkingMemory(
        _memory_dir(settings) / "working.sqlite",
        retention_s=m.working_retention_s,
        cipher=value_cipher(settings),
    )


def build_conversation_store(settings: Settings, runtime: RuntimeSettings) -> ConversationStore:
    """The versioned conversation state, in the same database as working memory."""
    m = runtime.memory
    if _working_backend(settings, runtime) == "postgres":
        assert settings.postgres_url is not None  # nosec B101  # narrows a type for mypy; the invariant holds by construction
        return PostgresConversationStore(
            settings.postgres_url,
            schema=m.postgres_schema,
            retention_s=m.working_retention_s,
            cipher=value_cipher(settings),
        )
    return SQLiteConversationStore(
        _memory_dir(settings) / "working.sqlite",
        retention_s=m.working_retention_s,
        cipher=value_cipher(settings),
    )


@contextmanager
def write_together(*stores: object) -> Iterator[None]:
    """Writes in the block to the SQLite-backed `stores` commit as one transaction.

    The `build_*` functions put every SQLite layer in one file, so there is one database to lock.
    Other backends (PostgreSQL, Redis) keep committing each write on its own.
    """
    databases = {db for s in stores if isinstance(db := getattr(s, "db", None), SQLiteDatabase)}
    if len(databases) > 1:
        paths = sorted(str(db.path) for db in databases)
        raise ValueError(f"stores: write_together needs one SQLite file, got {paths}")
    with databases.pop().transaction() if databases else nullcontext():
        yield
