"""The readiness report's security items that read the audit log.

The log is the evidence that identity and access control ran: its hash chain must verify (a
broken chain is a failed item naming the record, since a tampered log proves nothing), and the
item reports what it saw: authentication failures, authorization denials, approvals and
releases, key rotations and the policy bundle the last decision used. An empty log is `missing`
(nothing was audited yet); a log that cannot be opened is `error`.
"""

from __future__ import annotations

import sqlite3
from collections import Counter

import psycopg

from agent_platform.audit import AuditLogError, open_audit_log, verify_chain
from agent_platform.readiness.item import Item
from agent_platform.settings import Settings

KEY = "implementation.audit_log"
TITLE = "Tamper-evident audit log of identity and access"


def audit_log_item(settings: Settings) -> Item:
    """Verify the chain and count the security events it holds."""
    try:
        log = open_audit_log(settings)
        try:
            records = list(log.records())
            verification = verify_chain(records, log.head())
        finally:
            log.close()
    except (AuditLogError, OSError, sqlite3.Error, psycopg.Error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Item("implementation", KEY, TITLE, "error", f"could not run: {reason[:200]}")
    kinds = Counter(r.kind for r in records)
    approvals = sum(1 for r in records if r.kind.endswith((".approve", ".signoff")))
    rotations = [r for r in records if r.kind == "keys.rotate" and r.outcome != "failure"]
    bundles = [r.details.get("policy_bundle") for r in records if r.details.get("policy_bundle")]
    evidence: dict[str, object] = {
        "records": verification.records,
        "authentication_failures": kinds["auth.failure"],
        "authentication_unavailable": kinds["auth.unavailable"],
        "authorization_denials": kinds["authz.denial"],
        "authorization_grants": kinds["authz.decision"],
        "approvals_and_signoffs": approvals,
        "key_rotations": len(rotations),
        "last_key_rotation": rotations[-1].at if rotations else None,
        "policy_bundle": bundles[-1] if bundles else None,
        "problems": list(verification.problems),
    }
    if not verification.ok:
        first = verification.problems[0]
        more = (
            f" (+{len(verification.problems) - 1} more)" if len(verification.problems) > 1 else ""
        )
        return Item(
            "implementation",
            KEY,
            TITLE,
            "fail",
            f"hash chain broken: {first}{more}",
            True,
            evidence,
        )
    if not records:
        return Item(
            "implementation", KEY, TITLE, "missing", "the audit log is empty: nothing audited yet",
            True, evidence,
        )  # fmt: skip
    rotated = f"last {rotations[-1].at}" if rotations else "none recorded"
    detail = (
        f"chain of {verification.records} records verifies; {kinds['auth.failure']} "
        f"authentication failure(s), {kinds['authz.denial']} authorization denial(s), "
        f"{approvals} approval(s) and sign-off(s), key rotations: {len(rotations)} ({rotated}); "
        f"policy bundle {(bundles[-1] or '')[:19] if bundles else 'none recorded'}"
    )
    return Item("implementation", KEY, TITLE, "pass", detail, True, evidence)
