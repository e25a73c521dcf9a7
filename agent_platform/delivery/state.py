"""Where a rollout stands, persisted so the gateway, the CLI and the Dagster sensor share it.

One row per rollout in `<home>/delivery/rollouts.sqlite` (WAL, so gateways read while the
controller writes). The gateway only reads the newest rollout of its agent; the controller is the
only writer. Production runs several gateways on one shared home volume or keeps the same table
in PostgreSQL (not implemented yet: see README, "Deploying a version").
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field


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


class RolloutStore:
    """SQLite rows of rollouts and approvals; reading never creates the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def under(cls, home_dir: Path) -> RolloutStore:
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
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO rollouts (id, agent, updated_at, state) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET updated_at = excluded.updated_at, "
                "state = excluded.state",
                (rollout.id, rollout.agent, rollout.updated_at, rollout.model_dump_json()),
            )
        return rollout

    def latest(self, agent: str) -> Rollout | None:
        """The newest rollout of `agent` (active or finished), or None."""
        found = self.history(agent, limit=1)
        return found[0] if found else None

    def active(self, agent: str) -> Rollout | None:
        latest = self.latest(agent)
        return latest if latest is not None and latest.active else None

    def history(self, agent: str, limit: int = 20) -> list[Rollout]:
        if not self.path.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT state FROM rollouts WHERE agent = ? ORDER BY updated_at DESC LIMIT ?",
                (agent, limit),
            ).fetchall()
        return [Rollout.model_validate_json(row[0]) for row in rows]

    def agents(self) -> list[str]:
        if not self.path.exists():
            return []
        with self._connect() as conn:
            return [r[0] for r in conn.execute("SELECT DISTINCT agent FROM rollouts")]

    # --- approvals -----------------------------------------------------------------------------
    def approve(self, agent: str, version: str, *, role: str, subject: str, verified: bool) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO approvals VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(agent, version, role) "
                "DO UPDATE SET subject = excluded.subject, verified = excluded.verified, "
                "at = excluded.at",
                (agent, version, role, subject, int(verified), time.time()),
            )

    def approvals(self, agent: str, version: str) -> dict[str, dict[str, Any]]:
        """role → {subject, verified, at} for one version."""
        if not self.path.exists():
            return {}
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT role, subject, verified, at FROM approvals WHERE agent = ? AND version = ?",
                (agent, version),
            ).fetchall()
        return {r[0]: {"subject": r[1], "verified": bool(r[2]), "at": r[3]} for r in rows}


def dumps(rollout: Rollout) -> str:
    """The status view: the rollout without its raw counter samples."""
    return json.dumps(rollout.model_dump(mode="json", exclude={"samples"}), indent=2)
