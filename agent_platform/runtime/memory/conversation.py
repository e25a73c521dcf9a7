"""Versioned conversation state, in the working-memory database (PostgreSQL or SQLite).

Every `append` writes a new version holding the full transcript (a snapshot, so any version reads
in one row and `rollback` is a copy). Rollback never deletes: it writes a new version equal to the
old one, marked `restored_from`, so what was undone stays auditable. Versions of a session are
numbered 1, 2, 3… ; writers of one session are serialised (SQLite: the write lock; PostgreSQL: a
transaction-scoped advisory lock on the session), so numbers never collide.

Encryption at rest: each version's transcript is sealed (AES-256-GCM, see
`agent_platform.security.crypto`) with the tenant's data key, bound to the session and version, so
a transcript copied onto another version or session does not decrypt.

Retention: a session idle for longer than `retention_s` (24 h; idle = since its newest version)
has expired. Reads treat it as absent at once (version 0, no versions), and the next write to it
deletes its old versions and starts again at version 1. `purge_expired` deletes every expired
session; writes call it themselves at most once per `purge_interval_s`, after their own
transaction has committed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent_platform.runtime.memory._db import (
    Clock,
    PostgresDatabase,
    RetainedStore,
    SQLiteDatabase,
)
from agent_platform.runtime.memory.base import (
    ConversationState,
    MemoryScope,
    Turn,
    VersionInfo,
    VersionNotFoundError,
)
from agent_platform.security.crypto.cipher import PLAINTEXT, ValueCipher


def _check_turns(turns: Sequence[Turn]) -> list[Turn]:
    if isinstance(turns, Turn):
        turns = [turns]
    turns = list(turns)
    if not turns:
        raise ValueError("turns: at least one turn is required")
    for index, turn in enumerate(turns):
        if not isinstance(turn, Turn):
            raise ValueError(f"turns[{index}]: must be a Turn, got {type(turn).__name__}")
    return turns


TABLE = "conversation_versions"


def _seal_turns(cipher: ValueCipher, scope: MemoryScope, version: int, turns: list[Turn]) -> str:
    text = json.dumps([t.to_dict() for t in turns])
    return cipher.seal(scope.tenant, TABLE, f"{scope.key}#{version}", text)


def _open_turns(cipher: ValueCipher, scope: MemoryScope, version: int, raw: Any) -> list[Any]:
    """The turns of a stored version: a sealed token, JSON text, or (PostgreSQL) decoded JSONB."""
    text = raw.decode() if isinstance(raw, bytes) else raw if isinstance(raw, str) else None
    text = json.dumps(raw) if text is None else text
    turns: list[Any] = json.loads(cipher.open(scope.tenant, TABLE, f"{scope.key}#{version}", text))
    return turns


def _jsonb(cipher: ValueCipher, stored: str) -> str:
    """The JSONB literal of a stored value: a sealed token is stored as a JSON string."""
    return json.dumps(stored) if cipher.enabled else stored


def _state(
    scope: MemoryScope, row: tuple[Any, ...] | None, cipher: ValueCipher
) -> ConversationState:
    if row is None:
        return ConversationState(scope, 0, ())
    version, turns, created_at, restored_from = row
    data = _open_turns(cipher, scope, int(version), turns)
    return ConversationState(
        scope,
        int(version),
        tuple(Turn.from_dict(t) for t in data),
        float(created_at),
        None if restored_from is None else int(restored_from),
    )


# Sessions whose newest version is at or before the horizon (both parameters: the horizon).
_EXPIRED_SESSIONS = """SELECT c.tenant, c.user_id, c.session_id FROM {table} c
    WHERE c.created_at <= {p} AND NOT EXISTS (
        SELECT 1 FROM {table} n WHERE n.tenant = c.tenant AND n.user_id = c.user_id
        AND n.session_id = c.session_id AND n.created_at > {p})"""


def _check_version(version: int) -> int:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"version: must be an integer >= 1, got {version!r}")
    return version


class SQLiteConversationStore(RetainedStore):
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
                """CREATE TABLE IF NOT EXISTS conversation_versions (
                    tenant TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
                    version INTEGER NOT NULL, turns TEXT NOT NULL, created_at REAL NOT NULL,
                    restored_from INTEGER,
                    PRIMARY KEY (tenant, user_id, session_id, version))"""
            )
            conn.execute(
                "CREATE INDEX IF NOT EXISTS conversation_versions_created "
                "ON conversation_versions (created_at)"
            )

    _COLUMNS = "version, turns, created_at, restored_from"
    _WHERE = "tenant = ? AND user_id = ? AND session_id = ?"
    # The session is alive: its newest version is younger than the retention (parameter: horizon).
    _ALIVE = (
        "(SELECT MAX(created_at) FROM conversation_versions "
        "WHERE tenant = ? AND user_id = ? AND session_id = ?) > ?"
    )

    def _write(
        self,
        scope: MemoryScope,
        build: Callable[[ConversationState], tuple[list[Turn], int | None]],
    ) -> ConversationState:
        key = (scope.tenant, scope.user, scope.session)
        with self.db.transaction() as conn:
            now = self._clock()
            if self._sweeper.due(now):
                self.db.after_commit(self.purge_expired)
            row = conn.execute(
                f"SELECT {self._COLUMNS} FROM conversation_versions WHERE {self._WHERE} "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                "ORDER BY version DESC LIMIT 1",
                key,
            ).fetchone()
            if row is not None and row[2] <= now - self.retention_s:  # expired: start afresh
                conn.execute(f"DELETE FROM conversation_versions WHERE {self._WHERE}", key)  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                row = None
            current = _state(scope, row, self.cipher)
            turns, restored_from = build(current)
            conn.execute(
                "INSERT INTO conversation_versions VALUES (?,?,?,?,?,?,?)",
                (
                    *key,
                    current.version + 1,
                    _seal_turns(self.cipher, scope, current.version + 1, turns),
                    now,
                    restored_from,
                ),
            )
        return ConversationState(scope, current.version + 1, tuple(turns), now, restored_from)

    def append(self, scope: MemoryScope, turns: Sequence[Turn]) -> ConversationState:
        new = _check_turns(turns)
        return self._write(scope, lambda cur: ([*cur.turns, *new], None))

    def current(self, scope: MemoryScope) -> ConversationState:
        rows = self.db.query(
            f"SELECT {self._COLUMNS} FROM conversation_versions WHERE {self._WHERE} "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
            "ORDER BY version DESC LIMIT 1",
            (scope.tenant, scope.user, scope.session),
        )
        alive = bool(rows) and rows[0][2] > self._horizon()
        return _state(scope, rows[0] if alive else None, self.cipher)

    def get_version(self, scope: MemoryScope, version: int) -> ConversationState:
        _check_version(version)
        key = (scope.tenant, scope.user, scope.session)
        rows = self.db.query(
            f"SELECT {self._COLUMNS} FROM conversation_versions WHERE {self._WHERE} "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
            f"AND version = ? AND {self._ALIVE}",
            (*key, version, *key, self._horizon()),
        )
        if not rows:
            raise VersionNotFoundError(scope, version)
        return _state(scope, rows[0], self.cipher)

    def versions(self, scope: MemoryScope) -> list[VersionInfo]:
        key = (scope.tenant, scope.user, scope.session)
        rows = self.db.query(
            f"SELECT {self._COLUMNS} FROM conversation_versions WHERE {self._WHERE} "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
            f"AND {self._ALIVE} ORDER BY version",
            (*key, *key, self._horizon()),
        )
        return [
            VersionInfo(r[0], r[2], len(_open_turns(self.cipher, scope, r[0], r[1])), r[3])
            for r in rows
        ]

    def rollback(self, scope: MemoryScope, version: int) -> ConversationState:
        target = self.get_version(scope, version)
        return self._write(scope, lambda cur: (list(target.turns), version))

    def purge_expired(self) -> int:
        horizon = self._horizon()
        expired = _EXPIRED_SESSIONS.format(table="conversation_versions", p="?")
        with self.db.transaction() as conn:
            return conn.execute(
                "DELETE FROM conversation_versions "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                f"WHERE (tenant, user_id, session_id) IN ({expired})",
                (horizon, horizon),
            ).rowcount

    def close(self) -> None:
        self.db.close()


class PostgresConversationStore(RetainedStore):
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
                    """CREATE TABLE IF NOT EXISTS {schema}.conversation_versions (
                        tenant TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
                        version INTEGER NOT NULL, turns JSONB NOT NULL,
                        created_at DOUBLE PRECISION NOT NULL, restored_from INTEGER,
                        PRIMARY KEY (tenant, user_id, session_id, version))"""
                )
            )
            conn.execute(
                self.db.sql(
                    "CREATE INDEX IF NOT EXISTS conversation_versions_created "
                    "ON {schema}.conversation_versions (created_at)"
                )
            )

    _SELECT = (
        "SELECT version, turns, created_at, restored_from FROM {schema}.conversation_versions "
        "WHERE tenant = %s AND user_id = %s AND session_id = %s"
    )
    _ALIVE = (
        " AND (SELECT MAX(created_at) FROM {schema}.conversation_versions "
        "WHERE tenant = %s AND user_id = %s AND session_id = %s) > %s"
    )

    def _write(
        self,
        scope: MemoryScope,
        build: Callable[[ConversationState], tuple[list[Turn], int | None]],
    ) -> ConversationState:
        key = (scope.tenant, scope.user, scope.session)
        with self.db.transaction() as conn:
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"{self.db.schema}:{scope.key}",),
            )
            now = self._clock()
            row = conn.execute(
                self.db.sql(self._SELECT + " ORDER BY version DESC LIMIT 1"), key
            ).fetchone()
            if row is not None and row[2] <= now - self.retention_s:  # expired: start afresh
                conn.execute(
                    self.db.sql(
                        "DELETE FROM {schema}.conversation_versions "
                        "WHERE tenant = %s AND user_id = %s AND session_id = %s"
                    ),
                    key,
                )
                row = None
            current = _state(scope, row, self.cipher)
            turns, restored_from = build(current)
            conn.execute(
                self.db.sql(
                    "INSERT INTO {schema}.conversation_versions "
                    "VALUES (%s,%s,%s,%s,%s::jsonb,%s,%s)"
                ),
                (
                    *key,
                    current.version + 1,
                    _jsonb(
                        self.cipher, _seal_turns(self.cipher, scope, current.version + 1, turns)
                    ),
                    now,
                    restored_from,
                ),
            )
        if self._sweeper.due(now):
            self.purge_expired()
        return ConversationState(scope, current.version + 1, tuple(turns), now, restored_from)

    def append(self, scope: MemoryScope, turns: Sequence[Turn]) -> ConversationState:
        new = _check_turns(turns)
        return self._write(scope, lambda cur: ([*cur.turns, *new], None))

    def current(self, scope: MemoryScope) -> ConversationState:
        rows = self.db.query(
            self.db.sql(self._SELECT + " ORDER BY version DESC LIMIT 1"),
            (scope.tenant, scope.user, scope.session),
        )
        alive = bool(rows) and float(rows[0][2]) > self._horizon()
        return _state(scope, rows[0] if alive else None, self.cipher)

    def get_version(self, scope: MemoryScope, version: int) -> ConversationState:
        _check_version(version)
        key = (scope.tenant, scope.user, scope.session)
        rows = self.db.query(
            self.db.sql(self._SELECT + " AND version = %s" + self._ALIVE),
            (*key, version, *key, self._horizon()),
        )
        if not rows:
            raise VersionNotFoundError(scope, version)
        return _state(scope, rows[0], self.cipher)

    def versions(self, scope: MemoryScope) -> list[VersionInfo]:
        key = (scope.tenant, scope.user, scope.session)
        rows = self.db.query(
            self.db.sql(
                "SELECT version, created_at, turns, restored_from "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                "FROM {schema}.conversation_versions "
                "WHERE tenant = %s AND user_id = %s AND session_id = %s"
                + self._ALIVE
                + " ORDER BY version"
            ),
            (*key, *key, self._horizon()),
        )
        return [
            VersionInfo(
                int(r[0]), float(r[1]), len(_open_turns(self.cipher, scope, int(r[0]), r[2])), r[3]
            )
            for r in rows
        ]

    def rollback(self, scope: MemoryScope, version: int) -> ConversationState:
        target = self.get_version(scope, version)
        return self._write(scope, lambda cur: (list(target.turns), version))

    def purge_expired(self) -> int:
        horizon = self._horizon()
        table = "{schema}.conversation_versions"
        expired = _EXPIRED_SESSIONS.format(table=table, p="%s")
        with self.db.transaction() as conn:
            return conn.execute(
                self.db.sql(
                    f"DELETE FROM {table} WHERE (tenant, user_id, session_id) IN ({expired})"  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                ),
                (horizon, horizon),
            ).rowcount

    def close(self) -> None:
        self.db.close()
