"""Where the audit log lives: a SQLite file locally, a PostgreSQL schema in production.

Appends are serialised (SQLite's write lock, a PostgreSQL advisory lock) so that two processes
never chain onto the same predecessor; triggers refuse UPDATE and DELETE, so an accident cannot
rewrite history and an attacker must first drop them (which `verify` then catches in the chain).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from agent_platform.audit.chain import (
    GENESIS,
    AuditEvent,
    AuditRecord,
    AuditVerification,
    record_hash,
    verify_chain,
)

_COLUMNS = "seq, at, kind, actor, action, outcome, tenant, resource, details, prev_hash, hash"


class AuditLogError(RuntimeError):
    """The audit log cannot be written or read; callers fail closed on it."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _seal(event: AuditEvent, seq: int, prev_hash: str) -> AuditRecord:
    """The event as record `seq` of the chain, hashed onto its predecessor's hash."""
    at = _now()
    digest = record_hash(seq=seq, at=at, event=event, prev_hash=prev_hash)
    return AuditRecord(
        seq=seq,
        at=at,
        kind=event.kind,
        actor=event.actor,
        action=event.action,
        outcome=event.outcome,
        tenant=event.tenant,
        resource=event.resource,
        details=event.details,
        prev_hash=prev_hash,
        hash=digest,
    )


def _row(record: AuditRecord) -> tuple[Any, ...]:
    """The record's column values, in `_COLUMNS` order, JSON fields serialised."""
    return (
        record.seq,
        record.at,
        record.kind,
        json.dumps(record.actor, sort_keys=True),
        record.action,
        record.outcome,
        record.tenant,
        record.resource,
        json.dumps(record.details, sort_keys=True, default=str),
        record.prev_hash,
        record.hash,
    )


def _row_to_record(row: tuple[Any, ...]) -> AuditRecord:
    seq, at, kind, actor, action, outcome, tenant, resource, details, prev_hash, digest = row
    return AuditRecord(
        seq=int(seq),
        at=str(at),
        kind=kind,
        actor=json.loads(actor) if isinstance(actor, str) else actor,
        action=action,
        outcome=outcome,
        tenant=tenant,
        resource=resource,
        details=json.loads(details) if isinstance(details, str) else details,
        prev_hash=prev_hash,
        hash=digest,
    )


class AuditLog(ABC):
    """Append-only, hash-chained log of security-relevant events."""

    def append(self, event: AuditEvent) -> AuditRecord:
        try:
            return self._append(event)
        except (sqlite3.Error, psycopg.Error, OSError) as exc:
            raise AuditLogError(f"audit log: cannot record {event.kind}: {exc}") from exc

    def record(
        self,
        kind: str,
        *,
        actor: dict[str, Any],
        action: str,
        outcome: str,
        tenant: str | None = None,
        resource: str | None = None,
        **details: Any,
    ) -> AuditRecord:
        return self.append(
            AuditEvent(
                kind=kind,
                actor=actor,
                action=action,
                outcome=outcome,
                tenant=tenant,
                resource=resource,
                details=details,
            )
        )

    def verify(self) -> AuditVerification:
        return verify_chain(self.records(), self.head())

    def tail(self, limit: int = 20) -> list[AuditRecord]:
        records = list(self.records(newest_first=True, limit=limit))
        return list(reversed(records))

    @abstractmethod
    def _append(self, event: AuditEvent) -> AuditRecord: ...

    @abstractmethod
    def records(
        self, *, newest_first: bool = False, limit: int | None = None
    ) -> Iterator[AuditRecord]: ...

    @abstractmethod
    def head(self) -> tuple[int, str] | None: ...

    def close(self) -> None:  # noqa: B027 - optional for stores without connections
        pass


class SQLiteAuditLog(AuditLog):
    """The local profile's log: `<home>/audit/audit.sqlite`, mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.closing(self._connect()) as conn, conn:
            conn.executescript(
                """
                CREATE TABLE IF NOT EXISTS audit_log (
                    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL,
                    actor TEXT NOT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL,
                    tenant TEXT, resource TEXT, details TEXT NOT NULL,
                    prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS audit_head (
                    id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,
                    hash TEXT NOT NULL);
                CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
                    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
                CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
                    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
                """
            )
        self.path.chmod(0o600)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def _append(self, event: AuditEvent) -> AuditRecord:
        with contextlib.closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
                seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
                record = _seal(event, seq, prev)
                conn.execute(
                    f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                    _row(record),
                )
                conn.execute(
                    "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                    (record.seq, record.hash),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return record

    def records(
        self, *, newest_first: bool = False, limit: int | None = None
    ) -> Iterator[AuditRecord]:
        order = "DESC" if newest_first else "ASC"
        query = f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq {order}"  # nosec B608  # constant table/column names and placeholders; values are bound parameters
        params: tuple[Any, ...] = ()
        if limit is not None:
            query += " LIMIT ?"
            params = (limit,)
        with contextlib.closing(self._connect()) as conn:
            rows = conn.execute(query, params).fetchall()
        for row in rows:
            yield _row_to_record(row)

    def head(self) -> tuple[int, str] | None:
        with contextlib.closing(self._connect()) as conn:
            row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        return (int(row[0]), str(row[1])) if row else None


class PostgresAuditLog(AuditLog):
    """The production log: tables in one PostgreSQL schema, appends under an advisory lock."""

    _LOCK_KEY = 0x61756469  # "audi"

    def __init__(self, url: str, schema: str = "agent_platform_audit") -> None:
        self.url = url
        self.schema = schema
        ident = sql.Identifier(schema)
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            # replicas starting at once must not race on CREATE ... IF NOT EXISTS
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"agent_platform ddl {schema}",)
            )
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.audit_log (seq BIGINT PRIMARY KEY,"
                    " at TEXT NOT NULL,"
                    " kind TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,"
                    " outcome TEXT NOT NULL, tenant TEXT, resource TEXT, details TEXT NOT NULL,"
                    " prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
                ).format(ident)
            )
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.audit_head (id INT PRIMARY KEY CHECK (id = 1),"
                    " seq BIGINT NOT NULL, hash TEXT NOT NULL)"
                ).format(ident)
            )
            conn.execute(
                sql.SQL(
                    "CREATE OR REPLACE FUNCTION {}.refuse_change() RETURNS trigger LANGUAGE plpgsql"
                    " AS $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$"
                ).format(ident)
            )
            exists = conn.execute(
                "SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND t.tgname = 'audit_log_append_only'",
                (schema,),
            ).fetchone()
            if not exists:
                conn.execute(
                    sql.SQL(
                        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE"
                        " ON {}.audit_log"
                        " FOR EACH ROW EXECUTE FUNCTION {}.refuse_change()"
                    ).format(ident, ident)
                )

    def _append(self, event: AuditEvent) -> AuditRecord:
        ident = sql.Identifier(self.schema)
        with psycopg.connect(self.url) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._LOCK_KEY,))
            row = conn.execute(
                sql.SQL("SELECT seq, hash FROM {}.audit_head WHERE id = 1").format(ident)
            ).fetchone()
            seq, prev = (int(row[0]) + 1, row[1]) if row else (1, GENESIS)
            record = _seal(event, seq, prev)
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.audit_log (" + _COLUMNS + ") VALUES "  # nosec B608  # constant table/column names and placeholders; values are bound parameters
                    "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                ).format(ident),
                _row(record),
            )
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.audit_head (id, seq, hash) VALUES (1, %s, %s) "
                    "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"
                ).format(ident),
                (record.seq, record.hash),
            )
        return record

    def records(
        self, *, newest_first: bool = False, limit: int | None = None
    ) -> Iterator[AuditRecord]:
        order = sql.SQL("DESC" if newest_first else "ASC")
        query = sql.SQL("SELECT " + _COLUMNS + " FROM {}.audit_log ORDER BY seq {}").format(  # nosec B608  # constant table/column names and placeholders; values are bound parameters
            sql.Identifier(self.schema), order
        )
        if limit is not None:
            query = query + sql.SQL(" LIMIT {}").format(sql.Literal(int(limit)))
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(query).fetchall()
        for row in rows:
            yield _row_to_record(row)

    def head(self) -> tuple[int, str] | None:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                sql.SQL("SELECT seq, hash FROM {}.audit_head WHERE id = 1").format(
                    sql.Identifier(self.schema)
                )
            ).fetchone()
        return (int(row[0]), str(row[1])) if row else None


def open_audit_log(settings: Any) -> AuditLog:
    """The profile's log: PostgreSQL in production (its URL is required there), SQLite locally."""
    if settings.profile == "production":
        if not settings.postgres_url:
            raise AuditLogError(
                "audit log: the production profile keeps it in PostgreSQL; set "
                "AGENT_PLATFORM_POSTGRES_URL"
            )
        return PostgresAuditLog(settings.postgres_url)
    return SQLiteAuditLog(Path(settings.home) / "audit" / "audit.sqlite")
