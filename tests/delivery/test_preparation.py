"""Preparation refuses what must not reach users: an unevaluated or failing version, missing
lineage, a missing or doubled approval, an unverified approver in production; scans without a
readiness report are recorded as not verified, never as passed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from agent_platform.delivery.preparation import (
    LINEAGE_KEYS,
    approval_checks,
    refused,
    scan_checks,
    version_checks,
)
from agent_platform.delivery.state import SQLiteRolloutStore
from agent_platform.model_registry import AgentVersion
from agent_platform.settings import Settings

LINEAGE = dict.fromkeys(LINEAGE_KEYS, "x")


def version(tags: dict[str, str], lineage: dict[str, str] = LINEAGE) -> AgentVersion:
    return AgentVersion(
        name="qa",
        version=7,
        run_id="",
        source="",
        created_at=datetime.now(UTC),
        tags=tags,
        lineage=lineage,
    )


def statuses(checks) -> dict[str, str]:
    return {c.name: c.status for c in checks}


def test_version_checks() -> None:
    good = {"eval.run_id": "r1", "eval.gates_passed": "true"}
    assert not refused(version_checks(version(good), champion=3))
    assert statuses(version_checks(version({}), 3))["evaluated"] == "failed"
    failing = version_checks(version({"eval.run_id": "r1", "eval.gates_passed": "false"}), 3)
    assert statuses(failing)["gates"] == "failed"
    partial = version_checks(version(good, {"git_commit": "abc"}), 3)
    assert statuses(partial)["lineage"] == "failed" and "index_snapshot_id" in partial[-1].detail
    assert statuses(version_checks(version(good), champion=7))["not_serving"] == "failed"


def test_approvals(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    store = SQLiteRolloutStore.under(tmp_path)
    missing = approval_checks(store, settings, "qa", "7")
    assert statuses(missing) == dict.fromkeys(
        [f"approval.{r}" for r in settings.delivery.required_approvals], "failed"
    )
    store.approve("qa", "7", role="release_manager", subject="rita", verified=True)
    store.approve("qa", "7", role="operations_lead", subject="rita", verified=True)
    store.approve("qa", "7", role="security_team_lead", subject="sofia", verified=False)
    checks = statuses(approval_checks(store, settings, "qa", "7"))
    assert checks == {
        "approval.release_manager": "passed",
        "approval.operations_lead": "failed",  # one person, one role
        "approval.security_team_lead": "not_verified",  # --as, locally
    }
    production = settings.model_copy(update={"profile": "production"})
    in_production = statuses(approval_checks(store, production, "qa", "7"))
    assert in_production["approval.security_team_lead"] == "failed"


def test_scans_come_from_the_readiness_report(tmp_path: Path) -> None:
    assert statuses(scan_checks(tmp_path)) == {
        "dependency_scan": "not_verified",
        "security_audit": "not_verified",
    }
    report = tmp_path / "readiness" / "readiness.json"
    report.parent.mkdir()
    items = [
        {"key": "implementation.dependency_audit", "status": "unverified", "detail": "offline"},
        {"key": "implementation.security_scanning", "status": "fail", "detail": "2 high"},
    ]
    report.write_text(json.dumps({"generated_at": "today", "items": items}))
    checks = scan_checks(tmp_path)
    assert statuses(checks) == {"dependency_scan": "not_verified", "security_audit": "failed"}
    assert "2 high" in checks[1].detail
