"""Working memory backends: PostgreSQL (production) and SQLite (local).

Entries are (tenant, user, session, key) → JSON value, kept `retention_s` (24 h) after their last
update. Expired entries are invisible at once; `purge_expired` deletes them, and `put` calls it
itself at most once per `purge_interval_s` (after its own transaction has committed), so the
table does not grow without bound even when nothing else purges. Times are epoch seconds from an
injectable clock, so retention is testable without waiting a day. Values are sealed with the
tenant's data key (`cipher`), bound to (user, session, key); the keys themselves stay readable.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from agent_platform.runtime.memory._db import (
    Clock,
    PostgresDatabase,
    RetainedStore,
    SQLiteDatabase,
)
from agent_platform.runtime.memory.base import (
    JSONValue,
    MemoryScope,
    WorkingMemoryEntry,
    validate_key,
)
from agent_platform.security.crypto.cipher import PLAINTEXT, ValueCipher
from agent_platform.security.crypto.envelope import is_sealed


def _dumps(value: JSONValue) -> str:
    try:
        return json.dumps(value)
    except TypeError as exc:
        raise ValueError(f"value: must be JSON-serialisable ({exc})") from exc


TABLE = "working_memory"


def _record_id(scope: MemoryScope, key: str) -> str:
    return json.dumps([scope.user, scope.session, key])


def _seal(cipher: ValueCipher, scope: MemoryScope, key: str, value: JSONValue) -> str:
    return cipher.seal(scope.tenant, TABLE, _record_id(scope, key), _dumps(value))


def _jsonb(cipher: ValueCipher, stored: str) -> str:
    """The JSONB literal of a stored value: a sealed token is stored as a JSON string."""
    return json.dumps(stored) if cipher.enabled else stored


def _open(cipher: ValueCipher, scope: MemoryScope, key: str, stored: Any, *, encoded: bool) -> Any:
    """The value of a row: SQLite holds JSON text or a token; PostgreSQL decoded JSONB."""
    rid = _record_id(scope, key)
    if encoded or (isinstance(stored, str) and is_sealed(stored)):
        return json.loads(cipher.open(scope.tenant, TABLE, rid, stored))
    if cipher.enabled:  # plaintext JSONB: refused unless accept_plaintext
        cipher.open(scope.tenant, TABLE, rid, json.dumps(stored))
    return stored


def _filters(user: str | None, session: str | None) -> tuple[str, tuple[Any, ...]]:
    clauses, params = "", tuple[Any, ...]()
    if user is not None:
        clauses += " AND user_id = {p}"
        params += (user,)
    if session is not None:
        clauses += " AND session_id = {p}"
        params += (session,)
    return clauses, params


def _entry(row: tuple[Any, ...], cipher: ValueCipher, *, encoded: bool) -> WorkingMemoryEntry:
    """A row as an entry; `encoded` when the value column holds JSON text (SQLite)."""
    tenant, user, session, key, value, updated_at, expires_at = row
    scope = MemoryScope(tenant, user, session)
    return WorkingMemoryEntry(
        scope,
        key,
        _open(cipher, scope, key, value, encoded=encoded),
        float(updated_at),
        float(expires_at),
    )


class SQLiteWorkingMemory(RetainedStore):
    def __init__(
        self,
        path: Path | str,
        *,
        retention_s: float = 86_400.0,
        clock: Clock = time.time,
        purge_interval_s: float = 60.0,
        cipher: ValueCipher = PLAINTEXT,
    ) -> None:
        super().__init__(
            retention_s=retention_s, clock=clock, purge_interval_s=purge_interval_s, cipher=cipher
        )
        self.db = SQLiteDatabase.open(path)
        with self.db.transaction() as conn:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS working_memory (
                    tenant TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
                    key TEXT NOT NULL, value TEXT NOT NULL,
                    updated_at REAL NOT NULL, expires_at REAL NOT NULL,
                    PRIMARY KEY (tenant, user_id, session_id, key))"""
            )
            conn.execute(
                "CREATE INDEX IF NOT EXISTS working_memory_expiry ON working_memory (expires_at)"
            )

    def put(self, scope: MemoryScope, key: str, value: JSONValue) -> None:
        validate_key(key)
        now = self._clock()
        with self.db.transaction() as conn:
            conn.execute(
                """INSERT INTO working_memory VALUES (?,?,?,?,?,?,?)
                   ON CONFLICT (tenant, user_id, session_id, key) DO UPDATE SET
                   value = excluded.value, updated_at = excluded.updated_at,
                   expires_at = excluded.expires_at""",
                (
                    scope.tenant,
                    scope.user,
                    scope.session,
                    key,
                    _seal(self.cipher, scope, key, value),
                    now,
                    now + self.retention_s,
                ),
            )
            if self._sweeper.due(now):
                self.db.after_commit(self.purge_expired)

    def get(self, scope: MemoryScope, key: str) -> JSONValue | None:
        rows = self.db.query(
            """SELECT value FROM working_memory WHERE tenant = ? AND user_id = ?
               AND session_id = ? AND key = ? AND expires_at > ?""",
            (scope.tenant, scope.user, scope.session, key, self._clock()),
        )
        return _open(self.cipher, scope, key, rows[0][0], encoded=True) if rows else None

    def entries(
        self, tenant: str, user: str | None = None, session: str | None = None
    ) -> list[WorkingMemoryEntry]:
        clauses, params = _filters(user, session)
        rows = self.db.query(
            "SELECT tenant, user_id, session_id, key, value, updated_at, expires_at "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
            "FROM working_memory WHERE tenant = ? AND expires_at > ?"
            + clauses.format(p="?")
            + " ORDER BY updated_at, key",
            (tenant, self._clock(), *params),
        )
        return [_entry(r, self.cipher, encoded=True) for r in rows]

    def delete(self, scope: MemoryScope, key: str) -> bool:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                """DELETE FROM working_memory WHERE tenant = ? AND user_id = ?
                   AND session_id = ? AND key = ?""",
                (scope.tenant, scope.user, scope.session, key),
            )
            return cursor.rowcount > 0

    def purge_expired(self) -> int:
        with self.db.transaction() as conn:
            return conn.execute(
                "DELETE FROM working_memory WHERE expires_at <= ?", (self._clock(),)
            ).rowcount

    def close(self) -> None:
        self.db.close()


class PostgresWorkingMemory(RetainedStore):
    def __init__(
        self,
        url: str,
        *,
        schema: str = "agent_runtime",
        retention_s: float = 86_400.0,
        clock: Clock = time.time,
        purge_interval_s: float = 60.0,
        cipher: ValueCipher = PLAINTEXT,
    ) -> None:
        super().__init__(
            retention_s=retention_s, clock=clock, purge_interval_s=purge_interval_s, cipher=cipher
        )
        self.db = PostgresDatabase(url, schema)
        with self.db.schema_change() as conn:
            conn.execute(
                self.db.sql(
                    """CREATE TABLE IF NOT EXISTS {schema}.working_memory (
                        tenant TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
                        key TEXT NOT NULL, value JSONB NOT NULL,
                        updated_at DOUBLE PRECISION NOT NULL,
                        expires_at DOUBLE PRECISION NOT NULL,
                        PRIMARY KEY (tenant, user_id, session_id, key))"""
                )
            )
            conn.execute(
                self.db.sql(
                    "CREATE INDEX IF NOT EXISTS working_memory_expiry "
                    "ON {schema}.working_memory (expires_at)"
                )
            )

    def put(self, scope: MemoryScope, key: str, value: JSONValue) -> None:
        validate_key(key)
        now = self._clock()
        with self.db.transaction() as conn:
            conn.execute(
                self.db.sql(
                    """INSERT INTO {schema}.working_memory VALUES (%s,%s,%s,%s,%s::jsonb,%s,%s)
                       ON CONFLICT (tenant, user_id, session_id, key) DO UPDATE SET
                       value = excluded.value, updated_at = excluded.updated_at,
                       expires_at = excluded.expires_at"""
                ),
                (
                    scope.tenant,
                    scope.user,
                    scope.session,
                    key,
                    _jsonb(self.cipher, _seal(self.cipher, scope, key, value)),
                    now,
                    now + self.retention_s,
                ),
            )
        if self._sweeper.due(now):
            self.purge_expired()

    def get(self, scope: MemoryScope, key: str) -> JSONValue | None:
        rows = self.db.query(
            self.db.sql(
                """SELECT value FROM {schema}.working_memory WHERE tenant = %s AND user_id = %s
                   AND session_id = %s AND key = %s AND expires_at > %s"""
            ),
            (scope.tenant, scope.user, scope.session, key, self._clock()),
        )
        return _open(self.cipher, scope, key, rows[0][0], encoded=False) if rows else None

    def entries(
        self, tenant: str, user: str | None = None, session: str | None = None
    ) -> list[WorkingMemoryEntry]:
        clauses, params = _filters(user, session)
        rows = self.db.query(
            self.db.sql(
                "SELECT tenant, user_id, session_id, key, value, updated_at, expires_at "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                "FROM {schema}.working_memory WHERE tenant = %s AND expires_at > %s"
                + clauses.replace("{p}", "%s")
                + " ORDER BY updated_at, key"
            ),
            (tenant, self._clock(), *params),
        )
        return [_entry(r, self.cipher, encoded=False) for r in rows]

    def delete(self, scope: MemoryScope, key: str) -> bool:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                self.db.sql(
                    """DELETE FROM {schema}.working_memory WHERE tenant = %s AND user_id = %s
                       AND session_id = %s AND key = %s"""
                ),
                (scope.tenant, scope.user, scope.session, key),
            )
            return cursor.rowcount > 0

    def purge_expired(self) -> int:
        with self.db.transaction() as conn:
            return conn.execute(
                self.db.sql("DELETE FROM {schema}.working_memory WHERE expires_at <= %s"),
                (self._clock(),),
            ).rowcount

    def close(self) -> None:
        self.db.close()
