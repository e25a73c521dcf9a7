"""Short-term memory backends: Redis (production, real key TTLs) and SQLite (local).

Both keep one buffer per scope that expires `ttl_s` after its last write and holds at most
`max_items` entries, dropping the oldest. `add_many` writes several entries at once (a request
adds its question and answer in one round trip / transaction). Each entry is sealed with the
tenant's data key (`cipher`), bound to its buffer (tenant, user, session).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import redis

from agent_platform.runtime.memory._db import SQLiteDatabase, Sweeper
from agent_platform.runtime.memory.base import (
    JSONValue,
    MemoryItem,
    MemoryScope,
    ShortTermEntry,
    check_role,
)
from agent_platform.security.crypto.cipher import PLAINTEXT, ValueCipher

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


def _encode_all(entries: Sequence[ShortTermEntry], now: float) -> list[str]:
    """Every entry encoded (and so validated) before anything is written."""
    payloads = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, tuple) or len(entry) != 3:
            raise ValueError(
                f"entries[{index}]: must be a (role, content, metadata) tuple "
                f"(metadata may be None), got {entry!r}"
            )
        payloads.append(_encode(*entry, now))
    return payloads


TABLE = "short_term_items"


def _seal_all(cipher: ValueCipher, scope: MemoryScope, payloads: list[str]) -> list[str]:
    return [cipher.seal(scope.tenant, TABLE, scope.key, p) for p in payloads]


def _decode(cipher: ValueCipher, scope: MemoryScope, payload: str | bytes) -> MemoryItem:
    text = payload.decode() if isinstance(payload, bytes) else payload
    data = json.loads(cipher.open(scope.tenant, TABLE, scope.key, text))
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
        cipher: ValueCipher = PLAINTEXT,
    ) -> None:
        self.cipher = cipher
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
        self.add_many(scope, [(role, content, metadata)])

    def add_many(self, scope: MemoryScope, entries: Sequence[ShortTermEntry]) -> None:
        payloads = _seal_all(self.cipher, scope, _encode_all(entries, time.time()))
        if not payloads:
            return
        key = self._key(scope)
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, *payloads)
            pipe.ltrim(key, -self.max_items, -1)
            pipe.pexpire(key, max(1, int(self.ttl_s * 1000)))
            pipe.execute()

    def recent(self, scope: MemoryScope, limit: int | None = None) -> list[MemoryItem]:
        start = -limit if limit else 0
        payloads = self._redis.lrange(self._key(scope), start, -1)
        return [_decode(self.cipher, scope, p) for p in payloads]

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
    """Entries in one table, each scope's expiry in another (one row to refresh per write: the
    sliding TTL). Reads hide expired buffers; writes delete them at most once per
    `purge_interval_s`, once their own transaction has committed. The file may be shared with
    the other memory layers (`SQLiteDatabase.open`), so a request's writes to all of them can
    commit as one transaction.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        ttl_s: float = 3600.0,
        max_items: int = 50,
        clock: Clock = time.time,
        purge_interval_s: float = 60.0,
        cipher: ValueCipher = PLAINTEXT,
    ) -> None:
        _check(ttl_s, max_items)
        self.cipher = cipher
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._clock = clock
        self._sweeper = Sweeper(purge_interval_s)
        self.db = SQLiteDatabase.open(path)
        self.path = self.db.path
        with self.db.transaction() as conn:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS short_term_items (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    scope_key TEXT NOT NULL,
                    payload TEXT NOT NULL)"""
            )
            conn.execute(
                "CREATE INDEX IF NOT EXISTS short_term_items_scope "
                "ON short_term_items (scope_key, seq)"
            )
            conn.execute(
                """CREATE TABLE IF NOT EXISTS short_term_buffers (
                    scope_key TEXT PRIMARY KEY, expires_at REAL NOT NULL)"""
            )
            conn.execute(
                "CREATE INDEX IF NOT EXISTS short_term_buffers_expiry "
                "ON short_term_buffers (expires_at)"
            )

    def add(
        self,
        scope: MemoryScope,
        role: str,
        content: str,
        metadata: Mapping[str, JSONValue] | None = None,
    ) -> None:
        self.add_many(scope, [(role, content, metadata)])

    def add_many(self, scope: MemoryScope, entries: Sequence[ShortTermEntry]) -> None:
        now = self._clock()
        payloads = _seal_all(self.cipher, scope, _encode_all(entries, now))
        if not payloads:
            return
        key = scope.key
        with self.db.transaction() as conn:
            if self._sweeper.due(now):
                self.db.after_commit(self.purge_expired)
            expired = conn.execute(
                "SELECT 1 FROM short_term_buffers WHERE scope_key = ? AND expires_at <= ?",
                (key, now),
            ).fetchone()
            if expired:  # an expired buffer starts empty, as a Redis key would
                conn.execute("DELETE FROM short_term_items WHERE scope_key = ?", (key,))
            conn.executemany(
                "INSERT INTO short_term_items (scope_key, payload) VALUES (?,?)",
                [(key, payload) for payload in payloads],
            )
            conn.execute(
                """INSERT INTO short_term_buffers VALUES (?,?)
                   ON CONFLICT (scope_key) DO UPDATE SET expires_at = excluded.expires_at""",
                (key, now + self.ttl_s),
            )
            conn.execute(
                """DELETE FROM short_term_items WHERE scope_key = ? AND seq <= (
                    SELECT seq FROM short_term_items WHERE scope_key = ?
                    ORDER BY seq DESC LIMIT 1 OFFSET ?)""",
                (key, key, self.max_items),
            )

    def recent(self, scope: MemoryScope, limit: int | None = None) -> list[MemoryItem]:
        rows = self.db.query(
            """SELECT i.payload FROM short_term_items i JOIN short_term_buffers b
               ON b.scope_key = i.scope_key
               WHERE i.scope_key = ? AND b.expires_at > ? ORDER BY i.seq DESC LIMIT ?""",
            (scope.key, self._clock(), min(limit or self.max_items, self.max_items)),
        )
        return [_decode(self.cipher, scope, r[0]) for r in reversed(rows)]

    def ttl_remaining(self, scope: MemoryScope) -> float | None:
        now = self._clock()
        rows = self.db.query(
            "SELECT expires_at FROM short_term_buffers WHERE scope_key = ?", (scope.key,)
        )
        if not rows or rows[0][0] <= now:
            return None
        return float(rows[0][0]) - now

    def clear(self, scope: MemoryScope) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM short_term_items WHERE scope_key = ?", (scope.key,))
            conn.execute("DELETE FROM short_term_buffers WHERE scope_key = ?", (scope.key,))

    def purge_expired(self) -> int:
        """Delete the entries of every expired buffer; returns how many."""
        now = self._clock()
        with self.db.transaction() as conn:
            deleted = conn.execute(
                """DELETE FROM short_term_items WHERE scope_key IN (
                    SELECT scope_key FROM short_term_buffers WHERE expires_at <= ?)""",
                (now,),
            ).rowcount
            conn.execute("DELETE FROM short_term_buffers WHERE expires_at <= ?", (now,))
            return deleted

    def close(self) -> None:
        self.db.close()
