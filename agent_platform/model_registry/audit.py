"""The promotion audit log, kept as tags of the registered model itself.

Tags live in the same store as the aliases (SQLite locally, PostgreSQL in production), so the
record of who moved `champion` from which version to which can never drift from the alias.
Each event is one append-only tag `audit.<seq>` holding JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

AUDIT_PREFIX = "audit."


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias: promote, rollback, challenger, evaluation."""

    seq: int
    action: str
    alias: str
    from_version: int | None
    to_version: int | None
    by: str
    at: str
    reason: str = ""

    def describe(self) -> str:
        moved = f"v{self.from_version or '-'} -> v{self.to_version or '-'}"
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.at} {self.action} {self.alias} {moved} by {self.by}{why}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def parse_events(tags: dict[str, str]) -> list[AliasEvent]:
    events = []
    for key, value in tags.items():
        if key.startswith(AUDIT_PREFIX):
            data: dict[str, Any] = json.loads(value)
            events.append(AliasEvent(**data))
    return sorted(events, key=lambda e: e.seq)


def new_event(
    existing: list[AliasEvent],
    *,
    action: str,
    alias: str,
    from_version: int | None,
    to_version: int | None,
    by: str,
    reason: str = "",
) -> tuple[str, str, AliasEvent]:
    """The tag key and value for the next event, and the event."""
    seq = (existing[-1].seq + 1) if existing else 1
    event = AliasEvent(seq, action, alias, from_version, to_version, by, now_iso(), reason)
    return f"{AUDIT_PREFIX}{seq:06d}", json.dumps(asdict(event), sort_keys=True), event
