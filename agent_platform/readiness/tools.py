"""Automatic checks that shell out to a tool: bandit (security scan) and pip-audit (dependency
vulnerabilities). A tool that is missing, times out or cannot reach its service gives
"could not run: <reason>", never a pass."""

from __future__ import annotations

import json
import subprocess  # nosec B404  # fixed argument lists, never a shell
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ToolOutcome:
    status: str  # pass | fail | error
    detail: str
    evidence: dict[str, object] = field(default_factory=dict)


def _run(
    args: list[str], timeout_s: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # nosec B603  # fixed argument list, no shell; no user input in it
        args, capture_output=True, text=True, timeout=timeout_s, cwd=cwd, check=False
    )


def _could_not(reason: str) -> ToolOutcome:
    return ToolOutcome("error", f"could not run: {reason}")


def run_bandit(paths: list[Path], *, timeout_s: float = 180) -> ToolOutcome:
    """Pass when bandit finds no high-severity issue in `paths` (a missing path is not a pass:
    bandit would scan nothing and report no issues)."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        return _could_not(f"bandit: no such path(s) to scan: {', '.join(missing)}")
    try:
        proc = _run(
            [sys.executable, "-m", "bandit", "-r", "-f", "json", "-q", *map(str, paths)], timeout_s
        )
    except subprocess.TimeoutExpired:
        return _could_not(f"bandit took longer than {timeout_s:.0f}s")
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return _could_not(f"bandit exited {proc.returncode}: {reason}")
    results = json.loads(proc.stdout).get("results", [])
    severities = Counter(r["issue_severity"] for r in results)
    high = [
        f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}"
        for r in results
        if r["issue_severity"] == "HIGH"
    ]
    detail = ", ".join(f"{n} {s.lower()}" for s, n in sorted(severities.items())) or "no issues"
    evidence: dict[str, object] = {"by_severity": dict(severities), "high": high[:20]}
    if high:
        return ToolOutcome(
            "fail", f"bandit: {len(high)} high-severity issue(s) ({detail})", evidence
        )
    return ToolOutcome("pass", f"bandit: no high-severity issues ({detail})", evidence)


def run_pip_audit(*, requirements: Path | None = None, timeout_s: float = 300) -> ToolOutcome:
    """Audit the installed environment (or a requirements file) with pip-audit; see
    `audit_outcome` for what passes. The project's own editable install is not on PyPI and is
    left out (`--skip-editable`)."""
    args = [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off"]
    args += ["--skip-editable"] if requirements is None else ["-r", str(requirements), "--no-deps"]
    try:
        proc = _run(args, timeout_s)
    except subprocess.TimeoutExpired:
        return _could_not(f"pip-audit took longer than {timeout_s:.0f}s (vulnerability service)")
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return _could_not(
            f"pip-audit exited {proc.returncode}: {(lines or ['no output'])[-1][:300]}"
        )
    return audit_outcome(report)


def audit_outcome(report: dict[str, object] | list[object]) -> ToolOutcome:
    """pip-audit's JSON report -> an outcome that claims only what was audited.

    A package pip-audit skipped (offline, not on PyPI: "Dependency not found on PyPI and could not
    be audited") was not checked. `fail` when any audited package has a known vulnerability;
    `unverified` ("not verified") when any package was skipped, naming the most common reason and
    the share audited; `pass` only when every package was audited and none is vulnerable.
    """
    listed = report.get("dependencies", []) if isinstance(report, dict) else report
    deps = [d for d in listed if isinstance(d, dict)] if isinstance(listed, list) else []
    vulnerable = [
        f"{d['name']} {d.get('version', '?')}: {', '.join(v['id'] for v in d.get('vulns', []))}"
        for d in deps
        if d.get("vulns")
    ]
    skipped = {d["name"]: str(d["skip_reason"]) for d in deps if d.get("skip_reason")}
    audited = len(deps) - len(skipped)
    share = audited / len(deps) if deps else 0.0
    evidence: dict[str, object] = {
        "packages": len(deps),
        "audited": audited,
        "audited_share": round(share, 4),
        "vulnerable": vulnerable,
        "skipped": sorted(skipped)[:50],
    }
    coverage = f"audited {audited} of {len(deps)} packages ({share:.0%})"
    if vulnerable:
        return ToolOutcome(
            "fail", f"pip-audit: {len(vulnerable)} vulnerable package(s); {coverage}", evidence
        )
    if not deps:
        return ToolOutcome("unverified", "pip-audit: the report lists no packages", evidence)
    if skipped:
        reason, count = Counter(_reason(r) for r in skipped.values()).most_common(1)[0]
        evidence["skip_reason"] = reason
        return ToolOutcome(
            "unverified",
            f"pip-audit: {coverage}; {count} skipped: {reason} (no vulnerability database "
            "reached? run it where PyPI is reachable)",
            evidence,
        )
    return ToolOutcome("pass", f"pip-audit: {coverage}, no known vulnerabilities", evidence)


def _reason(skip_reason: str) -> str:
    """The reason without the package named after it ("... audited: six (1.16.0)")."""
    return skip_reason.split(":", 1)[0].strip() or skip_reason
