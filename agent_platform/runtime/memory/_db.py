"""Connections shared by the SQL backends: one SQLite file or one PostgreSQL schema per store."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema(schema: str) -> str:
    if not _SCHEMA.match(schema):
        raise ValueError(
            f"schema: must be a lower-case SQL identifier (letters, digits, _), got {schema!r}"
        )
    return schema


class SQLiteDatabase:
    """A WAL-mode SQLite file, one connection, serialised by a lock.

    `synchronous=NORMAL` (the setting SQLite recommends with WAL): commits do not wait for an
    fsync, so a committed write survives a crash of the process but the last ones may be lost on
    power failure. That is the local profile's trade-off (a request writes several memory rows);
    production keeps these layers in PostgreSQL and Redis.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=5000")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.conn.execute(statement, params).fetchall()

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class PostgresDatabase:
    """One autocommit psycopg connection per store, serialised by a lock, in its own schema."""

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.schema = check_schema(schema)
        self.lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        with self.transaction() as conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True)
        return self._conn

    def sql(self, template: str) -> sql.Composed:
        """`template` with `{schema}` replaced by the quoted schema name."""
        return sql.SQL(template).format(schema=sql.Identifier(self.schema))

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self.lock:
            conn = self._connection()
            with conn.transaction():
                yield conn

    def query(self, statement: sql.Composed, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            return self._connection().execute(statement, params).fetchall()

    def drop_schema(self) -> None:
        """Remove the schema and everything in it (tests, tenant removal)."""
        with self.transaction() as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            )

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
