"""Short-term memory backends: Redis (production, real key TTLs) and SQLite (local).

Both keep one buffer per scope that expires `ttl_s` after its last write and holds at most
`max_items` entries, dropping the oldest.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import redis

from agent_platform.runtime.memory.base import JSONValue, MemoryItem, MemoryScope, check_role

Clock = Callable[[], float]


def _check(ttl_s: float, max_items: int) -> None:
    if ttl_s <= 0:
        raise ValueError(f"ttl_s: must be > 0, got {ttl_s}")
    if max_items < 1:
        raise ValueError(f"max_items: must be >= 1, got {max_items}")


def _encode(role: str, content: str, metadata: Mapping[str, JSONValue] | None, now: float) -> str:
    check_role(role)
    if not isinstance(content, str):
        raise ValueError(f"content: must be a string, got {type(content).__name__}")
    return json.dumps(
        {"role": role, "content": content, "created_at": now, "metadata": dict(metadata or {})}
    )


def _decode(payload: str | bytes) -> MemoryItem:
    data = json.loads(payload)
    return MemoryItem(data["role"], data["content"], data["created_at"], data.get("metadata", {}))


class RedisShortTermMemory:
    """One Redis list per scope; RPUSH + LTRIM + PEXPIRE in one MULTI, so the TTL is Redis's own."""

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = 3600.0,
        max_items: int = 50,
        key_prefix: str = "agent-platform:stm",
    ) -> None:
        _check(ttl_s, max_items)
        self.ttl_s = ttl_s
        self.max_items = max_items
        self.key_prefix = key_prefix
        self._redis = redis.Redis.from_url(url)

    def _key(self, scope: MemoryScope) -> str:
        return f"{self.key_prefix}:{scope.key}"

    def add(
        self,
        scope: MemoryScope,
        role: str,
        content: str,
        metadata: Mapping[str, JSONValue] | None = None,
    ) -> None:
        payload = _encode(role, content, metadata, time.time())
        key = self._key(scope)
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, payload)
            pipe.ltrim(key, -self.max_items, -1)
            pipe.pexpire(key, max(1, int(self.ttl_s * 1000)))
            pipe.execute()

    def recent(self, scope: MemoryScope, limit: int | None = None) -> list[MemoryItem]:
        start = -limit if limit else 0
        return [_decode(p) for p in self._redis.lrange(self._key(scope), start, -1)]

    def ttl_remaining(self, scope: MemoryScope) -> float | None:
        ms = int(self._redis.pttl(self._key(scope)))
        return ms / 1000.0 if ms >= 0 else None

    def clear(self, scope: MemoryScope) -> None:
        self._redis.delete(self._key(scope))

    def clear_prefix(self) -> int:
        """Delete every buffer under this key prefix (tests, tenant removal)."""
        keys = list(self._redis.scan_iter(match=f"{self.key_prefix}:*", count=500))
        return int(self._redis.delete(*keys)) if keys else 0

    def close(self) -> None:
        self._redis.close()


class SQLiteShortTermMemory:
    """SQLite table with an `expires_at` per scope, refreshed on every write (sliding TTL)."""

    def __init__(
        self,
        path: Path | str,
        *,
        ttl_s: float = 3600.0,
        max_items: int = 50,
        clock: Clock = time.time,
    ) -> None:
        _check(ttl_s, max_items)
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._clock = clock
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # see memory._db.SQLiteDatabase
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS short_term_memory (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                scope_key TEXT NOT NULL,
                payload TEXT NOT NULL,
                expires_at REAL NOT NULL
            );
            CREATE INDEX IF NOT EXISTS short_term_memory_scope
                ON short_term_memory (scope_key, seq);
            CREATE INDEX IF NOT EXISTS short_term_memory_expiry
                ON short_term_memory (expires_at);
            """
        )

    def add(
        self,
        scope: MemoryScope,
        role: str,
        content: str,
        metadata: Mapping[str, JSONValue] | None = None,
    ) -> None:
        now = self._clock()
        payload = _encode(role, content, metadata, now)
        key = scope.key
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM short_term_memory WHERE expires_at <= ?", (now,))
                self._db.execute(
                    "INSERT INTO short_term_memory (scope_key, payload, expires_at) VALUES (?,?,?)",
                    (key, payload, now + self.ttl_s),
                )
                self._db.execute(
                    "UPDATE short_term_memory SET expires_at = ? WHERE scope_key = ?",
                    (now + self.ttl_s, key),
                )
                self._db.execute(
                    """DELETE FROM short_term_memory WHERE scope_key = ? AND seq NOT IN (
                        SELECT seq FROM short_term_memory WHERE scope_key = ?
                        ORDER BY seq DESC LIMIT ?)""",
                    (key, key, self.max_items),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def recent(self, scope: MemoryScope, limit: int | None = None) -> list[MemoryItem]:
        with self._lock:
            rows = self._db.execute(
                """SELECT payload FROM short_term_memory WHERE scope_key = ? AND expires_at > ?
                   ORDER BY seq DESC LIMIT ?""",
                (scope.key, self._clock(), limit or self.max_items),
            ).fetchall()
        return [_decode(r[0]) for r in reversed(rows)]

    def ttl_remaining(self, scope: MemoryScope) -> float | None:
        now = self._clock()
        with self._lock:
            row = self._db.execute(
                "SELECT MAX(expires_at) FROM short_term_memory WHERE scope_key = ?", (scope.key,)
            ).fetchone()
        if row[0] is None or row[0] <= now:
            return None
        return float(row[0]) - now

    def clear(self, scope: MemoryScope) -> None:
        with self._lock:
            self._db.execute("DELETE FROM short_term_memory WHERE scope_key = ?", (scope.key,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
