"""Where wrapped data keys live: SQLite under `<home>/keys/` locally, PostgreSQL in production.

One row per (tenant, version): the data key wrapped by a key-encryption key version. Only wrapped
keys are stored; the plaintext data keys exist in process memory only.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql

from agent_platform.security.crypto.errors import KeyServiceError
from agent_platform.security.private_files import private_file


@dataclass(frozen=True)
class WrappedKey:
    tenant: str
    version: int
    kek_version: int
    wrapped: bytes
    created_at: float


class DataKeyStore(Protocol):
    def get(self, tenant: str, version: int) -> WrappedKey | None: ...

    def latest(self, tenant: str) -> WrappedKey | None: ...

    def insert(self, key: WrappedKey) -> bool:
        """Add a key; False when (tenant, version) exists already (another process won)."""
        ...

    def tenants(self) -> list[str]: ...

    def wrapped_by_other_than(self, kek_version: int, limit: int) -> list[WrappedKey]: ...

    def rewrap(self, old: WrappedKey, kek_version: int, wrapped: bytes) -> bool:
        """Replace the wrapping of `old` unless someone changed it meanwhile."""
        ...

    def count_by_kek_version(self) -> dict[int, int]: ...

    def count(self) -> int: ...

    def close(self) -> None: ...


_COLUMNS = "tenant, version, kek_version, wrapped, created_at"


def _key(row: tuple[Any, ...] | None) -> WrappedKey | None:
    if row is None:
        return None
    return WrappedKey(str(row[0]), int(row[1]), int(row[2]), bytes(row[3]), float(row[4]))


class SQLiteDataKeyStore:
    """`<home>/keys/data_keys.sqlite` (0600); a short connection per call, so processes share it."""

    def __init__(self, path: Path) -> None:
        self.path = private_file(Path(path))
        self._lock = threading.Lock()
        with self._connect() as conn:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS data_keys (
                    tenant TEXT NOT NULL, version INTEGER NOT NULL, kek_version INTEGER NOT NULL,
                    wrapped BLOB NOT NULL, created_at REAL NOT NULL,
                    PRIMARY KEY (tenant, version))"""
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection: commits on success, rolls back on error, always closed."""
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def _one(self, statement: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._lock, self._connect() as conn:
            row: tuple[Any, ...] | None = conn.execute(statement, params).fetchone()
            return row

    def _all(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock, self._connect() as conn:
            return conn.execute(statement, params).fetchall()

    def get(self, tenant: str, version: int) -> WrappedKey | None:
        return _key(
            self._one(
                f"SELECT {_COLUMNS} FROM data_keys WHERE tenant = ? AND version = ?",  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                (tenant, version),
            )
        )

    def latest(self, tenant: str) -> WrappedKey | None:
        return _key(
            self._one(
                f"SELECT {_COLUMNS} FROM data_keys WHERE tenant = ? ORDER BY version DESC LIMIT 1",  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                (tenant,),
            )
        )

    def insert(self, key: WrappedKey) -> bool:
        with self._lock, self._connect() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO data_keys VALUES (?,?,?,?,?)",
                (key.tenant, key.version, key.kek_version, key.wrapped, key.created_at),
            )
            return cursor.rowcount == 1

    def tenants(self) -> list[str]:
        return [r[0] for r in self._all("SELECT DISTINCT tenant FROM data_keys ORDER BY tenant")]

    def wrapped_by_other_than(self, kek_version: int, limit: int) -> list[WrappedKey]:
        rows = self._all(
            f"SELECT {_COLUMNS} FROM data_keys WHERE kek_version != ? "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
            "ORDER BY tenant, version LIMIT ?",
            (kek_version, limit),
        )
        return [k for r in rows if (k := _key(r)) is not None]

    def rewrap(self, old: WrappedKey, kek_version: int, wrapped: bytes) -> bool:
        with self._lock, self._connect() as conn:
            cursor = conn.execute(
                "UPDATE data_keys SET kek_version = ?, wrapped = ? "
                "WHERE tenant = ? AND version = ? AND kek_version = ? AND wrapped = ?",
                (kek_version, wrapped, old.tenant, old.version, old.kek_version, old.wrapped),
            )
            return cursor.rowcount == 1

    def count_by_kek_version(self) -> dict[int, int]:
        rows = self._all("SELECT kek_version, COUNT(*) FROM data_keys GROUP BY kek_version")
        return {int(v): int(n) for v, n in rows}

    def count(self) -> int:
        return sum(self.count_by_kek_version().values())

    def close(self) -> None:
        return None


class PostgresDataKeyStore:
    """Table `data_keys` in schema `agent_platform_keys` (shared by every serving process)."""

    def __init__(self, url: str, schema: str = "agent_platform_keys") -> None:
        self.url = url
        self.schema = schema
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        # one implicit transaction (several statements, no parameters) under the schema's DDL
        # lock, so replicas starting at once do not race on CREATE ... IF NOT EXISTS
        self._execute(
            "SELECT pg_advisory_xact_lock(hashtext('agent_platform ddl data_keys')); "
            "CREATE SCHEMA IF NOT EXISTS {schema}; CREATE TABLE IF NOT EXISTS {schema}.data_keys ("
            "tenant TEXT NOT NULL, version INTEGER NOT NULL, kek_version INTEGER NOT NULL, "
            "wrapped BYTEA NOT NULL, created_at DOUBLE PRECISION NOT NULL, "
            "PRIMARY KEY (tenant, version))"
        )

    def _execute(self, template: str, params: tuple[Any, ...] = ()) -> psycopg.Cursor[Any]:
        statement = sql.SQL(template).format(schema=sql.Identifier(self.schema))
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            return self._conn.execute(statement, params)
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise KeyServiceError(
                f"encryption: the data-key store is unreachable ({reason})"
            ) from None

    def _one(self, template: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            return self._execute(template, params).fetchone()

    def _all(self, template: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._execute(template, params).fetchall()

    def get(self, tenant: str, version: int) -> WrappedKey | None:
        return _key(
            self._one(
                f"SELECT {_COLUMNS} FROM {{schema}}.data_keys WHERE tenant = %s AND version = %s",  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                (tenant, version),
            )
        )

    def latest(self, tenant: str) -> WrappedKey | None:
        return _key(
            self._one(
                f"SELECT {_COLUMNS} FROM {{schema}}.data_keys WHERE tenant = %s "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                "ORDER BY version DESC LIMIT 1",
                (tenant,),
            )
        )

    def insert(self, key: WrappedKey) -> bool:
        with self._lock:
            cursor = self._execute(
                "INSERT INTO {schema}.data_keys VALUES (%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                (key.tenant, key.version, key.kek_version, key.wrapped, key.created_at),
            )
            return cursor.rowcount == 1

    def tenants(self) -> list[str]:
        rows = self._all("SELECT DISTINCT tenant FROM {schema}.data_keys ORDER BY tenant")
        return [r[0] for r in rows]

    def wrapped_by_other_than(self, kek_version: int, limit: int) -> list[WrappedKey]:
        rows = self._all(
            f"SELECT {_COLUMNS} FROM {{schema}}.data_keys WHERE kek_version != %s "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
            "ORDER BY tenant, version LIMIT %s",
            (kek_version, limit),
        )
        return [k for r in rows if (k := _key(r)) is not None]

    def rewrap(self, old: WrappedKey, kek_version: int, wrapped: bytes) -> bool:
        with self._lock:
            cursor = self._execute(
                "UPDATE {schema}.data_keys SET kek_version = %s, wrapped = %s WHERE tenant = %s "
                "AND version = %s AND kek_version = %s AND wrapped = %s",
                (kek_version, wrapped, old.tenant, old.version, old.kek_version, old.wrapped),
            )
            return cursor.rowcount == 1

    def count_by_kek_version(self) -> dict[int, int]:
        rows = self._all(
            "SELECT kek_version, COUNT(*) FROM {schema}.data_keys GROUP BY kek_version"
        )
        return {int(v): int(n) for v, n in rows}

    def count(self) -> int:
        return sum(self.count_by_kek_version().values())

    def drop(self) -> None:
        """Remove the schema (tests)."""
        with self._lock:
            self._execute("DROP SCHEMA IF EXISTS {schema} CASCADE")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
