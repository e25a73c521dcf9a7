"""Where a rollout stands, persisted so the gateway, the CLI and the Dagster sensor share it.

One row per rollout, in `<home>/delivery/rollouts.sqlite` (WAL, so gateways read while the
controller writes) or, for gateways on several hosts, in a PostgreSQL schema (production, or
`delivery.postgres_url`). The gateway only reads the newest rollout of its agent; the controller
is the only writer.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from abc import ABC, abstractmethod
from contextlib import closing
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from agent_platform.runtime.memory._db import PostgresDatabase
    from agent_platform.settings import Settings


class Stage(StrEnum):
    PREPARATION = "preparation"
    DEPLOYMENT = "deployment"  # green takes its share of traffic, step by step
    VERIFICATION = "verification"  # green serves everyone and holds the champion alias
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"
    REFUSED = "refused"  # preparation failed: no traffic ever reached green


ACTIVE = frozenset({Stage.DEPLOYMENT, Stage.VERIFICATION})


class Rollout(BaseModel):
    """One deployment of `green` beside `blue` (version labels of `agent`)."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    agent: str
    blue: str
    green: str
    stage: Stage = Stage.PREPARATION
    step: int = -1  # index into the steps; -1 before any traffic
    weight: int = 0  # percent of requests green answers
    started_at: float = Field(default_factory=time.time)
    step_started_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    by: str = ""
    reason: str = ""
    checks: list[dict[str, str]] = Field(default_factory=list)
    # cumulative counter samples of green, (time, snapshot), for the sliding window
    samples: list[tuple[float, dict[str, Any]]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.stage in ACTIVE

    def note(self, event: str, **details: Any) -> dict[str, Any]:
        entry = {"at": time.time(), "event": event, "stage": str(self.stage), **details}
        self.events.append(entry)
        return entry

    def summary(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"{self.agent}: v{self.green} {self.stage} at {self.weight}% beside v{self.blue}{why}"
        )


class RolloutStore(ABC):
    """Rollouts and approvals; the controller writes, gateways and the CLI read."""

    @abstractmethod
    def save(self, rollout: Rollout) -> Rollout: ...

    @abstractmethod
    def history(self, agent: str, limit: int = 20) -> list[Rollout]:
        """The rollouts of `agent`, newest first."""

    @abstractmethod
    def agents(self) -> list[str]: ...

    @abstractmethod
    def approve(
        self, agent: str, version: str, *, role: str, subject: str, verified: bool
    ) -> None: ...

    @abstractmethod
    def approvals(self, agent: str, version: str) -> dict[str, dict[str, Any]]:
        """role → {subject, verified, at} for one version."""

    def latest(self, agent: str) -> Rollout | None:
        """The newest rollout of `agent` (active or finished), or None."""
        found = self.history(agent, limit=1)
        return found[0] if found else None

    def active(self, agent: str) -> Rollout | None:
        latest = self.latest(agent)
        return latest if latest is not None and latest.active else None


class SQLiteRolloutStore(RolloutStore):
    """SQLite rows under the home (one host, or hosts sharing its volume); reading never creates
    the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def under(cls, home_dir: Path) -> SQLiteRolloutStore:
        return cls(home_dir / "delivery" / "rollouts.sqlite")

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS rollouts (id TEXT PRIMARY KEY, agent TEXT NOT NULL, "
            "updated_at REAL NOT NULL, state TEXT NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS approvals (agent TEXT NOT NULL, version TEXT NOT NULL, "
            "role TEXT NOT NULL, subject TEXT NOT NULL, verified INTEGER NOT NULL, "
            "at REAL NOT NULL, PRIMARY KEY (agent, version, role))"
        )
        return conn

    def save(self, rollout: Rollout) -> Rollout:
        rollout.updated_at = time.time()
        with closing(self._connect()) as conn, conn:
            conn.execute(UPSERT_ROLLOUT, _row(rollout))
        return rollout

    def history(self, agent: str, limit: int = 20) -> list[Rollout]:
        if not self.path.exists():
            return []
        with closing(self._connect()) as conn:
            rows = conn.execute(HISTORY, (agent, limit)).fetchall()
        return [Rollout.model_validate_json(row[0]) for row in rows]

    def agents(self) -> list[str]:
        if not self.path.exists():
            return []
        with closing(self._connect()) as conn:
            return [r[0] for r in conn.execute("SELECT DISTINCT agent FROM rollouts")]

    def approve(self, agent: str, version: str, *, role: str, subject: str, verified: bool) -> None:
        with closing(self._connect()) as conn, conn:
            conn.execute(UPSERT_APPROVAL, (agent, version, role, subject, verified, time.time()))

    def approvals(self, agent: str, version: str) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        with closing(self._connect()) as conn:
            rows = conn.execute(APPROVALS, (agent, version)).fetchall()
        return _approvals(rows)


class PostgresRolloutStore(RolloutStore):
    """The same rows in a PostgreSQL schema, for gateways on several hosts. Connects on first
    use (a gateway starts while the database is briefly away; its view keeps the last state)."""

    def __init__(self, url: str, schema: str = "agent_delivery") -> None:
        from agent_platform.runtime.memory._db import check_schema

        self.url, self.schema = url, check_schema(schema)
        self._db: PostgresDatabase | None = None

    @property
    def db(self) -> PostgresDatabase:
        if self._db is None:
            from agent_platform.runtime.memory._db import PostgresDatabase

            db = PostgresDatabase(self.url, self.schema)
            with db.schema_change() as conn:  # replicas starting at once take turns
                for statement in PG_TABLES:
                    conn.execute(db.sql(statement))
            self._db = db
        return self._db

    def _run(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One of the shared statements, in this store's schema."""
        db = self.db
        pg = TABLE.sub(r"{schema}.\1", statement.replace("?", "%s"))
        with db.transaction() as conn:
            cursor = conn.execute(db.sql(pg), params)
            return cursor.fetchall() if cursor.description else []

    def save(self, rollout: Rollout) -> Rollout:
        rollout.updated_at = time.time()
        self._run(UPSERT_ROLLOUT, _row(rollout))
        return rollout

    def history(self, agent: str, limit: int = 20) -> list[Rollout]:
        rows = self._run(HISTORY, (agent, limit))
        return [Rollout.model_validate_json(row[0]) for row in rows]

    def agents(self) -> list[str]:
        return [r[0] for r in self._run("SELECT DISTINCT agent FROM rollouts")]

    def approve(self, agent: str, version: str, *, role: str, subject: str, verified: bool) -> None:
        self._run(UPSERT_APPROVAL, (agent, version, role, subject, verified, time.time()))

    def approvals(self, agent: str, version: str) -> dict[str, dict[str, Any]]:
        return _approvals(self._run(APPROVALS, (agent, version)))

    def drop(self) -> None:
        """Remove the schema (tests)."""
        self.db.drop_schema()
        self.db.close()
        self._db = None


# one SQL text for both backends (`?` and table names adapted for PostgreSQL)
UPSERT_ROLLOUT = (
    "INSERT INTO rollouts (id, agent, updated_at, state) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET updated_at = excluded.updated_at, state = excluded.state"
)
HISTORY = "SELECT state FROM rollouts WHERE agent = ? ORDER BY updated_at DESC LIMIT ?"
UPSERT_APPROVAL = (
    "INSERT INTO approvals (agent, version, role, subject, verified, at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(agent, version, role) "
    "DO UPDATE SET subject = excluded.subject, verified = excluded.verified, at = excluded.at"
)
TABLE = re.compile(r"\b(rollouts|approvals)\b")
APPROVALS = "SELECT role, subject, verified, at FROM approvals WHERE agent = ? AND version = ?"
PG_TABLES = (
    "CREATE TABLE IF NOT EXISTS {schema}.rollouts (id TEXT PRIMARY KEY, agent TEXT NOT NULL, "
    "updated_at DOUBLE PRECISION NOT NULL, state TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS rollouts_agent ON {schema}.rollouts (agent, updated_at)",
    "CREATE TABLE IF NOT EXISTS {schema}.approvals (agent TEXT NOT NULL, version TEXT NOT NULL, "
    "role TEXT NOT NULL, subject TEXT NOT NULL, verified BOOLEAN NOT NULL, "
    "at DOUBLE PRECISION NOT NULL, PRIMARY KEY (agent, version, role))",
)


def _row(rollout: Rollout) -> tuple[str, str, float, str]:
    return (rollout.id, rollout.agent, rollout.updated_at, rollout.model_dump_json())


def _approvals(rows: list[Any]) -> dict[str, dict[str, Any]]:
    return {r[0]: {"subject": r[1], "verified": bool(r[2]), "at": r[3]} for r in rows}


def open_rollout_store(settings: Settings) -> RolloutStore:
    """PostgreSQL when `delivery.postgres_url` is set or in production (its `postgres_url`),
    so gateways on several hosts read one state; SQLite under the home otherwise."""
    url = settings.delivery.postgres_url or (
        settings.postgres_url if settings.profile == "production" else None
    )
    if url:
        return PostgresRolloutStore(url, settings.delivery.postgres_schema)
    return SQLiteRolloutStore.under(settings.home_dir)


def dumps(rollout: Rollout) -> str:
    """The status view: the rollout without its raw counter samples."""
    return json.dumps(rollout.model_dump(mode="json", exclude={"samples"}), indent=2)
