"""The review record: approvals and the promotion/rollback/A-B audit log, in one SQLite file.

SQLite (under `settings.home_dir / "prompts"`) because the audit log must be append-only with the
full history and transactional between a CLI and a Dagster run; MLflow tags are overwritable
key-values, so they only mirror the latest state (`approval.<role>`, `promoted_by`) for its UI.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent_platform.prompts.errors import PromotionRefusedError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
    prompt TEXT NOT NULL, version INTEGER NOT NULL, role TEXT NOT NULL,
    approver TEXT NOT NULL, approved_at TEXT NOT NULL,
    PRIMARY KEY (prompt, version, role, approver)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, prompt TEXT NOT NULL, action TEXT NOT NULL,
    version INTEGER, previous_version INTEGER, actor TEXT NOT NULL, at TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_prompt ON events (prompt, id);
"""
# Columns added after the first release: (name, declaration), added to older files on open.
_ADDED_COLUMNS = (
    ("verified", "INTEGER NOT NULL DEFAULT 0"),
    ("granted_roles", "TEXT NOT NULL DEFAULT '[]'"),
)


@dataclass(frozen=True)
class Approval:
    """Who approved which version in which role, and when.

    `verified`: the approver is a verified subject (a token from the issuer) and `granted_roles`
    are the identity's roles the policy granted the approval for; otherwise the approver is a
    local development name, checked against the committed roles file.
    """

    prompt: str
    version: int
    role: str
    approver: str
    approved_at: datetime
    verified: bool = False
    granted_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReviewEvent:
    """One entry of the audit log: approve, promote, rollback, ab_start, ab_stop."""

    id: int
    prompt: str
    action: str
    version: int | None
    previous_version: int | None
    actor: str
    at: datetime
    detail: dict[str, Any]


def utcnow() -> datetime:
    return datetime.now(UTC)


class ReviewLog:
    """Approvals and audit events of every prompt, in `path` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def under(cls, home_dir: Path) -> ReviewLog:
        """The log at the platform's standard place, `<home>/prompts/reviews.sqlite`."""
        return cls(Path(home_dir) / "prompts" / "reviews.sqlite")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.executescript(_SCHEMA)
            present = {row[1] for row in conn.execute("PRAGMA table_info(approvals)")}
            for column, declaration in _ADDED_COLUMNS:
                if column not in present:
                    conn.execute(f"ALTER TABLE approvals ADD COLUMN {column} {declaration}")
            with conn:
                yield conn
        finally:
            conn.close()

    def add_approval(
        self,
        prompt: str,
        version: int,
        role: str,
        approver: str,
        detail: dict[str, Any] | None = None,
        *,
        verified: bool = False,
        granted_roles: tuple[str, ...] = (),
    ) -> Approval:
        """Record an approval (re-approving keeps the first timestamp) and its audit event.

        One approver fills at most one role of a version: the check and the insert run in one
        write transaction, so two concurrent approvals by one name cannot both pass it.
        """
        at = utcnow()
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            other = conn.execute(
                "SELECT role FROM approvals WHERE prompt = ? AND version = ? AND approver = ? "
                "AND role != ? ORDER BY approved_at LIMIT 1",
                (prompt, version, approver, role),
            ).fetchone()
            if other is not None:
                raise PromotionRefusedError(
                    f"{approver!r} already approved {prompt!r} v{version} as {other[0]!r}; one "
                    f"approver cannot fill two required roles, so {role!r} needs someone else"
                )
            conn.execute(
                "INSERT OR IGNORE INTO approvals (prompt, version, role, approver, approved_at, "
                "verified, granted_roles) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    prompt,
                    version,
                    role,
                    approver,
                    at.isoformat(),
                    int(verified),
                    json.dumps(sorted(granted_roles)),
                ),
            )
            event = {
                "role": role,
                "verified": verified,
                "granted_roles": sorted(granted_roles),
                **(detail or {}),
            }
            self._insert_event(conn, prompt, "approve", version, None, approver, event)
        return next(
            a for a in self.approvals(prompt, version) if (a.role, a.approver) == (role, approver)
        )

    def approvals(self, prompt: str, version: int) -> list[Approval]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT prompt, version, role, approver, approved_at, verified, granted_roles "
                "FROM approvals WHERE prompt = ? AND version = ? ORDER BY approved_at, role",
                (prompt, version),
            ).fetchall()
        return [
            Approval(p, v, r, a, datetime.fromisoformat(t), bool(ok), tuple(json.loads(g)))
            for p, v, r, a, t, ok, g in rows
        ]

    def record(
        self,
        prompt: str,
        action: str,
        version: int | None,
        previous_version: int | None,
        actor: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        with self._connect() as conn:
            self._insert_event(conn, prompt, action, version, previous_version, actor, detail or {})

    @staticmethod
    def _insert_event(
        conn: sqlite3.Connection,
        prompt: str,
        action: str,
        version: int | None,
        previous: int | None,
        actor: str,
        detail: dict[str, Any],
    ) -> None:
        conn.execute(
            "INSERT INTO events (prompt, action, version, previous_version, actor, at, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (prompt, action, version, previous, actor, utcnow().isoformat(), json.dumps(detail)),
        )

    def events(self, prompt: str) -> list[ReviewEvent]:
        """The audit log of `prompt`, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, prompt, action, version, previous_version, actor, at, detail "
                "FROM events WHERE prompt = ? ORDER BY id",
                (prompt,),
            ).fetchall()
        return [
            ReviewEvent(i, p, a, v, pv, who, datetime.fromisoformat(at), json.loads(d))
            for i, p, a, v, pv, who, at, d in rows
        ]

    def production_stack(self, prompt: str) -> list[int]:
        """Versions that served production, replayed from promotions (push) and rollbacks (pop)."""
        stack: list[int] = []
        for event in self.events(prompt):
            if event.action == "promote" and event.version is not None:
                stack.append(event.version)
            elif event.action == "rollback" and event.version is not None:
                if event.version in stack:
                    while stack[-1] != event.version:
                        stack.pop()
                else:  # rolled "back" to a version popped earlier
                    stack.append(event.version)
        return stack

    def served_versions(self, prompt: str) -> set[int]:
        """Every version that was ever in production (each was approved when promoted)."""
        return {
            e.version
            for e in self.events(prompt)
            if e.action in {"promote", "rollback"} and e.version is not None
        }
