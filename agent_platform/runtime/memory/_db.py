"""Connections shared by the SQL backends: one SQLite file or one PostgreSQL schema per store."""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import psycopg
from psycopg import sql

from agent_platform.security.crypto.cipher import PLAINTEXT, ValueCipher
from agent_platform.security.private_files import private_file

logger = logging.getLogger(__name__)
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema(schema: str) -> str:
    if not _SCHEMA.match(schema):
        raise ValueError(
            f"schema: must be a lower-case SQL identifier (letters, digits, _), got {schema!r}"
        )
    return schema


class SQLiteDatabase:
    """A WAL-mode SQLite file: one writing connection per file in the process, plus one for reads.

    `synchronous=NORMAL` (the setting SQLite recommends with WAL): commits do not wait for an
    fsync, so a committed write survives a crash of the process but the last ones may be lost on
    power failure. That is the local profile's trade-off; production keeps these layers in
    PostgreSQL and Redis.

    Stores opened on the same file share one instance (`SQLiteDatabase.open`), so the memory
    layers of a request can write in one transaction: `transaction()` nests, and only the
    outermost one commits (an error leaving the outermost block rolls back everything). Reads
    (`query`) use a read-only connection of their own, which WAL lets read the last committed
    state while a write is in progress, so they never wait behind a request's transaction; a
    thread inside a transaction reads through it instead, and sees its own uncommitted writes.
    Work passed to `after_commit` (the periodic purges) runs once the outermost transaction has
    committed, in its own transaction, so it never lengthens or spoils a request's.

    The process keeps no strong reference to an instance: one that no store uses any more is
    freed, with its connections, even if nobody called `close`.
    """

    _shared: ClassVar[weakref.WeakValueDictionary[Path, SQLiteDatabase]] = (
        weakref.WeakValueDictionary()
    )
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        private_file(self.path)  # 0600 before SQLite opens it (-wal/-shm inherit the mode)
        self.lock = threading.RLock()
        self.conn = self._connect()
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self._reader = self._connect()
        self._reader.execute("PRAGMA query_only=ON")
        self._read_lock = threading.Lock()
        self._depth = 0
        self._owner: int | None = None  # the thread inside the transaction
        self._after_commit: list[Callable[[], object]] = []
        self._users = 1
        self._finalizer = weakref.finalize(self, _close_all, self.conn, self._reader)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    @classmethod
    def open(cls, path: Path | str) -> SQLiteDatabase:
        """The process's instance for `path` (created on first use; `close` once per `open`)."""
        key = Path(path).resolve()
        with cls._shared_lock:
            db = cls._shared.get(key)
            if db is None:
                db = cls._shared[key] = cls(key)
            else:
                db._users += 1
            return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            if self._depth:  # inside another store's transaction: its commit covers this
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth, self._owner = 1, threading.get_ident()
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                self._after_commit.clear()
                raise
            finally:
                self._depth, self._owner = 0, None
            self.conn.execute("COMMIT")
            pending, self._after_commit = self._after_commit, []
        for work in pending:
            try:
                work()
            except Exception:  # the request has committed; a failed purge only costs space
                logger.exception("deferred work on %s failed", self.path)

    def after_commit(self, work: Callable[[], object]) -> None:
        """Run `work` once the current transaction commits (dropped if it rolls back), or now
        when there is none."""
        with self.lock:
            if self._depth:
                self._after_commit.append(work)
                return
        work()

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self._owner == threading.get_ident():  # our own transaction: read through it
            with self.lock:
                return self.conn.execute(statement, params).fetchall()
        with self._read_lock:
            return self._reader.execute(statement, params).fetchall()

    def close(self) -> None:
        with self._shared_lock, self.lock:
            self._users -= 1
            if self._users > 0:
                return
            if self._shared.get(self.path.resolve()) is self:
                del self._shared[self.path.resolve()]
            with self._read_lock:
                self._finalizer()


def _close_all(*connections: sqlite3.Connection) -> None:
    for conn in connections:
        conn.close()


def check_retention(retention_s: float) -> float:
    if retention_s <= 0:
        raise ValueError(f"retention_s: must be > 0, got {retention_s}")
    return retention_s


class Sweeper:
    """Says when a store's periodic purge of expired rows is due: at most once per `interval_s`.

    Reads already hide expired rows, so purging is only about space; doing it on a write at
    most once a minute keeps its cost off almost every request.
    """

    def __init__(self, interval_s: float = 60.0) -> None:
        if interval_s < 0:
            raise ValueError(f"purge_interval_s: must be >= 0, got {interval_s}")
        self.interval_s = interval_s
        self._next = float("-inf")
        self._lock = threading.Lock()

    def due(self, now: float) -> bool:
        """True (and the next sweep scheduled) when a sweep should run at `now`."""
        with self._lock:
            if now < self._next:
                return False
            self._next = now + self.interval_s
            return True


Clock = Callable[[], float]


class RetainedStore:
    """What every durable memory store shares: how long its rows live, the clock that ages them,
    when it purges, and the cipher that seals values at rest (one place, so the four SQL stores
    cannot drift apart on validation or defaults)."""

    def __init__(
        self,
        *,
        retention_s: float,
        clock: Clock,
        purge_interval_s: float,
        cipher: ValueCipher = PLAINTEXT,
    ) -> None:
        self.cipher = cipher
        self.retention_s = check_retention(retention_s)
        self._clock = clock
        self._sweeper = Sweeper(purge_interval_s)

    def _horizon(self) -> float:
        """Rows last touched before this instant have expired."""
        return self._clock() - self.retention_s


def ddl_lock_key(schema: str) -> str:
    """The advisory-lock name under which every process changes `schema`'s tables."""
    return f"agent_platform ddl {schema}"


class PostgresDatabase:
    """One autocommit psycopg connection per store, serialised by a lock, in its own schema."""

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.schema = check_schema(schema)
        self.lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        with self.schema_change() as conn:
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

    @contextmanager
    def schema_change(self) -> Iterator[psycopg.Connection[Any]]:
        """A transaction holding this schema's DDL lock. `CREATE ... IF NOT EXISTS` is not safe
        against itself: two replicas starting at once on a new database both try to create the
        table, and one fails on the catalogue's unique index."""
        with self.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (ddl_lock_key(self.schema),))
            yield conn

    def query(
        self, statement: psycopg.sql.Composed, params: tuple[Any, ...] = ()
    ) -> list[tuple[Any, ...]]:
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
