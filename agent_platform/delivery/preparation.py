"""The preparation stage: what must hold before any traffic reaches green.

Each check passes, fails (the rollout is refused) or is honestly `not_verified` (recorded, not
blocking): the dependency scan and security audit come from the newest readiness report, and an
approval given under an unverified development identity (`--as`) is accepted locally only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from agent_platform.delivery.state import RolloutStore
from agent_platform.model_registry.registry import AgentVersion
from agent_platform.settings import Settings

PASSED, FAILED, NOT_VERIFIED = "passed", "failed", "not_verified"
LINEAGE_KEYS = ("embedding_model", "index_snapshot_id", "git_commit", "prompts")
SCANS = {
    "dependency_scan": "implementation.dependency_audit",
    "security_audit": "implementation.security_scanning",
}


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def version_checks(version: AgentVersion, champion: int | None) -> list[Check]:
    ref = f"{version.name} v{version.version}"
    checks = [Check("version_exists", PASSED, f"{ref} is registered")]
    if champion == version.version:
        checks.append(Check("not_serving", FAILED, f"{ref} is already the champion"))
    if not version.evaluated:
        checks.append(Check("evaluated", FAILED, f"{ref} has no evaluation"))
    else:
        run = version.tags.get("eval.run_id")
        checks.append(Check("evaluated", PASSED, f"evaluation run {run}"))
        passed = version.gates_passed is True
        verdict = "passed every gate" if passed else "failed its quality gates"
        checks.append(Check("gates", PASSED if passed else FAILED, f"{ref} {verdict}"))
    missing = [k for k in LINEAGE_KEYS if not version.lineage.get(k)]
    checks.append(
        Check(
            "lineage",
            FAILED if missing else PASSED,
            f"missing {missing}" if missing else "prompts, index snapshot, embedding, commit",
        )
    )
    return checks


def scan_checks(home_dir: Path) -> list[Check]:
    """The readiness report's dependency audit and security scan, or not_verified without one."""
    path = home_dir / "readiness" / "readiness.json"
    if not path.is_file():
        why = "no readiness report (run `agent-platform readiness report`)"
        return [Check(name, NOT_VERIFIED, why) for name in SCANS]
    report = json.loads(path.read_text(encoding="utf-8"))
    items = {item["key"]: item for item in report.get("items", [])}
    checks = []
    for name, key in SCANS.items():
        item = items.get(key)
        if item is None:
            checks.append(Check(name, NOT_VERIFIED, f"the readiness report has no {key}"))
            continue
        status = {"pass": PASSED, "fail": FAILED}.get(item["status"], NOT_VERIFIED)
        at = report.get("generated_at", "?")
        checks.append(Check(name, status, f"{item['detail']} (readiness report of {at})"))
    return checks


def approval_checks(
    store: RolloutStore, settings: Settings, agent: str, version: str
) -> list[Check]:
    """One approval per required role, by distinct people; in production each identity must have
    been verified (a signed token), locally an unverified `--as` name is recorded as such."""
    given = store.approvals(agent, version)
    checks, seen = [], set()
    for role in settings.delivery.required_approvals:
        entry = given.get(role)
        if entry is None:
            detail = f"no approval (`agent-platform deploy approve {version} --role {role}`)"
            checks.append(Check(f"approval.{role}", FAILED, detail))
            continue
        subject, verified = entry["subject"], entry["verified"]
        if subject in seen:
            detail = f"{subject} already approved for another role"
            checks.append(Check(f"approval.{role}", FAILED, detail))
            continue
        seen.add(subject)
        if verified:
            checks.append(Check(f"approval.{role}", PASSED, f"by {subject} (verified identity)"))
        elif settings.profile == "production":
            detail = f"by {subject}, an unverified identity"
            checks.append(Check(f"approval.{role}", FAILED, detail))
        else:
            detail = f"by {subject} (unverified development identity)"
            checks.append(Check(f"approval.{role}", NOT_VERIFIED, detail))
    return checks


def refused(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == FAILED]
