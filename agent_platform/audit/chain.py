"""The hash chain: how a record's hash is computed and how a sequence of records is verified.

Each record carries the hash of the one before it, and the store keeps the newest (seq, hash) as
a head, so a modified, deleted, inserted or reordered record breaks the chain at a place that
`verify_chain` names. The hash is SHA-256 over a canonical JSON of the record's fields; anyone
who can rewrite the whole table and its head can forge a new chain, which is why production keeps
the log in PostgreSQL with UPDATE and DELETE revoked from the platform's role.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What a caller asks to record: the event kind (`auth.failure`, `authz.denial`,
    `prompt.approve`, `model.promote`, `keys.rotate`, ...), who did it, to what, and how it
    ended."""

    kind: str
    actor: dict[str, Any]
    action: str
    outcome: str
    tenant: str | None = None
    resource: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    at: str
    kind: str
    actor: dict[str, Any]
    action: str
    outcome: str
    tenant: str | None
    resource: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "actor": self.actor,
            "action": self.action,
            "outcome": self.outcome,
            "tenant": self.tenant,
            "resource": self.resource,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_hash(*, seq: int, at: str, event: AuditEvent | AuditRecord, prev_hash: str) -> str:
    body = {
        "seq": seq,
        "at": at,
        "kind": event.kind,
        "actor": event.actor,
        "action": event.action,
        "outcome": event.outcome,
        "tenant": event.tenant,
        "resource": event.resource,
        "details": event.details,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditVerification:
    records: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(records: Iterable[AuditRecord], head: tuple[int, str] | None) -> AuditVerification:
    """Walk the records in `seq` order and name every place the chain breaks."""
    problems: list[str] = []
    expected_seq, prev_hash, count = 1, GENESIS, 0
    last: AuditRecord | None = None
    for record in records:
        count += 1
        if record.hash != record_hash(
            seq=record.seq, at=record.at, event=record, prev_hash=record.prev_hash
        ):
            problems.append(
                f"record {record.seq} was modified: its content does not match its hash"
            )
        if record.seq > expected_seq:
            missing = (
                f"record {expected_seq}"
                if record.seq == expected_seq + 1
                else f"records {expected_seq}-{record.seq - 1}"
            )
            problems.append(f"{missing} deleted: the sequence jumps to {record.seq}")
        elif record.seq < expected_seq:
            problems.append(f"record {record.seq} inserted: its sequence number repeats")
        if record.prev_hash != prev_hash:
            problems.append(
                f"record {record.seq} does not follow the record before it "
                "(a record was inserted, deleted or reordered there)"
            )
        expected_seq, prev_hash, last = record.seq + 1, record.hash, record
    if head is not None:
        head_seq, head_hash = head
        if last is None or last.seq < head_seq:
            after = last.seq if last else 0
            problems.append(f"records after {after} deleted: the log's head is record {head_seq}")
        elif last.seq > head_seq:
            problems.append(
                f"records after {head_seq} inserted outside the log: the head is record {head_seq}"
            )
        elif last.hash != head_hash:
            problems.append(f"record {last.seq} was replaced: it does not match the log's head")
    elif last is not None:
        problems.append("the log's head is missing")
    return AuditVerification(records=count, problems=tuple(problems))
