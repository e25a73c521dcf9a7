"""The production-readiness checklist of the spec, each item checked by a tool where one can.

Statuses: `pass`, `fail`, `missing` (no evidence yet), `unverified` (shown "not verified": the
check ran but could not establish the item, e.g. an audit that audited nothing), `error` ("could
not run: …"), and for manual items `signed` (a recorded sign-off) or `missing`. An item passes only
on evidence that it holds; the champion is ready only when every item is `pass` or `signed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent_platform.evaluation.gates import GateThresholds
from agent_platform.model_registry import AgentVersion
from agent_platform.readiness import evidence, suite, tools
from agent_platform.readiness.gates import Subject, gate_items, subject
from agent_platform.readiness.item import Item
from agent_platform.readiness.security import audit_log_item
from agent_platform.readiness.signoffs import MANUAL_ITEMS, SignoffStore
from agent_platform.settings import Profile, Settings
from agent_platform.vectorstore.snapshots import check_files, list_snapshots, read_manifest

BACKUP_MAX_AGE = timedelta(hours=26)
QUALITY_CHECK_MAX_AGE = timedelta(hours=26)


@dataclass
class ChecklistInputs:
    """What the checks look at; tests point these at their own files."""

    settings: Settings
    project_root: Path
    tenant: str
    champion: AgentVersion | None
    gates: GateThresholds
    dataset_version: str
    run_tools: bool = True
    junit_path: Path | None = None
    versions: list[AgentVersion] = field(default_factory=list)
    agent: str = "agent"

    @property
    def subject(self) -> Subject | None:
        """What the gate items measure: the champion, else the best evaluated candidate."""
        return subject(self.champion, self.versions, self.gates)


def _age(iso: str) -> timedelta:
    return datetime.now(UTC) - datetime.fromisoformat(iso)


def _files_item(key: str, title: str, root: Path, names: list[str], section: str) -> Item:
    missing = [n for n in names if not (root / n).is_file() or not (root / n).stat().st_size]
    if missing:
        return Item(section, key, title, "fail", f"missing: {', '.join(missing)}")
    return Item(section, key, title, "pass", f"present: {', '.join(names)}")


def _contains(path: Path, words: list[str]) -> list[str]:
    text = path.read_text(encoding="utf-8").lower() if path.is_file() else ""
    return [w for w in words if w.lower() not in text]


def _manual(key: str, store: SignoffStore, *, verified_only: bool = False) -> Item:
    """A sign-off; where `verified_only` (production), one by an unverified development
    identity does not count."""
    section, _ = key.split(".", 1)
    signoff = store.get(key)
    if signoff is None:
        return Item(
            section,
            key,
            MANUAL_ITEMS[key],
            "missing",
            f"no sign-off: `agent-platform readiness signoff {key}` (signed in)",
            False,
        )
    note = f" ({signoff.note})" if signoff.note else ""
    who = (
        f"{signoff.by} (verified, granted by {', '.join(signoff.roles) or 'policy'})"
        if signoff.verified
        else f"{signoff.by} (unverified)"
    )
    status = "unverified" if verified_only and not signoff.verified else "signed"
    return Item(
        section,
        key,
        MANUAL_ITEMS[key],
        status,
        f"signed off by {who} at {signoff.at}{note}",
        False,
    )


def _tests(inputs: ChecklistInputs) -> Item:
    """Passes only when the latest pytest run passed, its coverage reaches the threshold of
    pyproject.toml, and every acceptance scenario passed; the detail shows the numbers."""
    reports = inputs.settings.home_dir / "reports"
    junit = inputs.junit_path or reports / suite.JUNIT
    title = "Test suite, coverage gate and acceptance scenarios"
    key = "implementation.tests"
    try:
        unit = suite.junit_counts([junit])
        coverage = suite.coverage_totals(junit.parent / suite.COVERAGE)
        scenarios = suite.junit_counts(sorted((reports / suite.ACCEPTANCE_DIR).glob("*.xml")))
        acceptance = suite.coverage_totals(reports / suite.ACCEPTANCE_COVERAGE)
    except ValueError as exc:
        return Item("implementation", key, title, "fail", f"unreadable evidence: {exc}")
    threshold = suite.coverage_threshold(inputs.project_root)
    absent = [
        name
        for name, found in (
            (f"test report {junit}", unit),
            (f"coverage report {junit.parent / suite.COVERAGE}", coverage),
            (f"acceptance reports {reports / suite.ACCEPTANCE_DIR}/*.xml", scenarios),
        )
        if found is None
    ]
    if threshold is None:
        absent.append("a coverage threshold (fail_under of [tool.coverage.report])")
    if absent or unit is None or coverage is None or scenarios is None or threshold is None:
        return Item(
            "implementation", key, title, "missing", f"no {'; no '.join(absent)}: run `make test`"
        )
    covered = coverage.percent >= threshold
    evidence: dict[str, object] = {
        "tests": unit.tests,
        "failed": unit.failed,
        "skipped": unit.skipped,
        "coverage_percent": round(coverage.percent, 2),
        "coverage_threshold": threshold,
        "spec_coverage": suite.SPEC_UNIT_COVERAGE,
        "scenarios": scenarios.tests,
        "scenarios_failed": scenarios.failed,
    }
    detail = (
        f"pytest: {unit.tests} tests, {unit.failed} failed or errored, {unit.skipped} skipped "
        f"(report of {unit.written_at}); coverage {coverage.percent:.1f}% of lines and branches "
        f"({'at or above' if covered else 'BELOW'} the threshold {threshold:g}%, the spec asks "
        f"{suite.SPEC_UNIT_COVERAGE:g}%); acceptance: {scenarios.tests} scenarios, "
        f"{scenarios.failed} failed"
    )
    if acceptance is not None:
        evidence["acceptance_coverage_percent"] = round(acceptance.percent, 2)
        detail += f", covering {acceptance.percent:.1f}% of the journey modules"
    status = "pass" if unit.passed and covered and scenarios.passed else "fail"
    return Item("implementation", key, title, status, detail, True, evidence)


def _static_analysis(inputs: ChecklistInputs) -> Item:
    """Reads the type checker's JUnit result that `make types` writes."""
    path = inputs.settings.home_dir / "reports" / suite.TYPES
    title = "Static analysis (mypy)"
    key = "implementation.static_analysis"
    try:
        result = suite.junit_counts([path])
    except ValueError as exc:
        return Item("implementation", key, title, "fail", f"unreadable evidence: {exc}")
    if result is None:
        return Item("implementation", key, title, "missing", f"no {path}: run `make types`")
    errors = [m for m in result.messages if ": error: " in m]
    evidence: dict[str, object] = {"errors": len(errors), "first_errors": errors[:10]}
    if result.failed:
        first = f"; first: {errors[0]}" if errors else ""
        detail = f"mypy reports {len(errors)} error(s) (run of {result.written_at}){first}"
        return Item("implementation", key, title, "fail", detail, True, evidence)
    detail = (
        f"mypy: no errors in the packages listed under [tool.mypy] (run of {result.written_at})"
    )
    return Item("implementation", key, title, "pass", detail, True, evidence)


def _backups(inputs: ChecklistInputs) -> tuple[Item, Item]:
    snaps = list_snapshots(inputs.settings.snapshots_dir, inputs.tenant)
    if not snaps:
        detail = f"no index snapshot of tenant {inputs.tenant!r}"
        return (
            Item("operations", "operations.backups", "Backups are fresh", "missing", detail),
            Item(
                "operations",
                "operations.recovery_plans",
                "Latest backup restorable",
                "missing",
                detail,
            ),
        )
    latest = snaps[-1]
    stamp = latest.created_at
    created = datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp
    age = datetime.now(UTC) - (created if created.tzinfo else created.replace(tzinfo=UTC))
    fresh = age <= BACKUP_MAX_AGE
    backup = Item(
        "operations",
        "operations.backups",
        "Backups are fresh",
        "pass" if fresh else "fail",
        f"latest snapshot {latest.snapshot_id} is {age.total_seconds() / 3600:.1f} h old "
        f"(limit {BACKUP_MAX_AGE.total_seconds() / 3600:.0f} h)",
    )
    directory = Path(latest.location)
    problems = check_files(directory, read_manifest(directory))
    recovery = Item(
        "operations",
        "operations.recovery_plans",
        "Latest backup restorable",
        "fail" if problems else "pass",
        "; ".join(problems)
        or f"checksums of {latest.snapshot_id} verify; restore with "
        f"`agent-platform index restore --tenant {inputs.tenant} --snapshot {latest.snapshot_id}`",
    )
    return backup, recovery


def _quality_gates(inputs: ChecklistInputs) -> list[Item]:
    return gate_items(
        inputs.champion, inputs.subject, agent=inputs.agent, dataset=inputs.dataset_version
    )


def _monitoring(settings: Settings) -> Item:
    """Passes when traces are exported by OTLP to a collector that answers; a local JSON file or
    no exporter is not monitoring."""
    title = "Monitoring (traces reach a collector)"
    exporter, problem, endpoint = _telemetry_exporter(settings.profile)
    if problem:
        return Item("deployment", "deployment.monitoring", title, "fail", problem)
    if exporter != "otlp" or endpoint is None:
        where = "a local JSON file" if exporter == "jsonfile" else "nowhere"
        return Item(
            "deployment",
            "deployment.monitoring",
            title,
            "fail",
            f"telemetry exporter {exporter}: traces go to {where}, which no monitoring reads; "
            "export by OTLP (set OTEL_EXPORTER_OTLP_ENDPOINT to the collector)",
        )
    down = evidence.reachable(endpoint)
    return Item(
        "deployment",
        "deployment.monitoring",
        title,
        "fail" if down else "pass",
        f"telemetry exporter otlp: collector {endpoint} "
        + (f"not reachable: {down}" if down else "accepts connections"),
        True,
        {"exporter": exporter, "endpoint": endpoint},
    )


def _pii_detection() -> Item:
    """PII detection runs its pattern recognizers; say whether names and places are covered."""
    from agent_platform.security.pii import configured_detector

    detector = configured_detector()
    ner = (
        f"spaCy NER ({detector.spacy_model}) detects PERSON and LOCATION"
        if detector.ner
        else "no spaCy model installed: PERSON and LOCATION are not detected"
    )
    return Item(
        "implementation",
        "implementation.pii_detection",
        "PII detection and masking",
        "pass",
        f"{len(detector.entities)} entity types by pattern recognizers; {ner} "
        "(docs/data-protection-pii.md)",
    )


def _runbooks(root: Path) -> Item:
    found, gaps = evidence.runbooks(root)
    alerts = evidence.alert_runbooks(root)
    gaps += [f"alert {a.name} ({a.problem})" for a in alerts if a.problem]
    title = "Runbooks (restore, corruption, reindex, incident response, one per alert)"
    where = "; ".join(f"{name}: {s.file} § {s.heading}" for name, s in found.items())
    if alerts:
        where += f"; {len(alerts)} alerts of {evidence.ALERT_RULES} each have one"
    if gaps:
        return Item(
            "operations",
            "operations.runbooks",
            title,
            "fail",
            f"no runbook (a section with steps in {' or '.join(evidence.RUNBOOK_FILES)}) for: "
            f"{', '.join(gaps)}" + (f"; found {where}" if where else ""),
        )
    return Item("operations", "operations.runbooks", title, "pass", where)


def evaluate_checklist(inputs: ChecklistInputs) -> list[Item]:
    """Every item of the checklist, in the spec's order."""
    root, settings, champion = inputs.project_root, inputs.settings, inputs.champion
    signoffs = SignoffStore.under(settings.home_dir)
    verified_only = settings.profile == "production"
    code = [root / d for d in ("agent_platform", "assets", "resources", "sensors")]
    skipped = tools.ToolOutcome("error", "could not run: tools disabled for this report")
    bandit = tools.run_bandit([p for p in code if p.is_dir()]) if inputs.run_tools else skipped
    audit = tools.run_pip_audit() if inputs.run_tools else skipped
    best = inputs.subject
    latency = best.version.metrics.get("latency_p95_ms") if best else None
    perf_missing = [n for n in ("BENCHMARKS.md",) if not (root / n).is_file()]
    perf_status = (
        "pass"
        if not perf_missing and latency is not None and latency <= inputs.gates.latency_p95_ms
        else ("missing" if perf_missing or latency is None else "fail")
    )
    checked = champion.tags.get("quality.checked_at") if champion else None
    quality_passed = champion.tags.get("quality.passed") if champion else None
    rollback_gaps = _contains(root / "docs" / "evaluation.md", ["models rollback"]) + _contains(
        root / "docs" / "operations.md", ["index restore"]
    )
    backup, recovery = _backups(inputs)
    items: list[Item | Callable[[], Item]] = [
        _files_item(
            "architecture.documentation",
            "Architecture and user documentation",
            root,
            [
                "README.md",
                "docs/overview.md",
                "docs/configuration.md",
                "docs/operations.md",
                "docs/evaluation.md",
            ],
            "architecture",
        ),
        _manual("architecture.security_review", signoffs, verified_only=verified_only),
        Item(
            "architecture",
            "architecture.performance_testing",
            "Performance tested",
            perf_status,
            f"BENCHMARKS.md {'missing' if perf_missing else 'present'}; "
            f"{best.label if best else 'no evaluated version'} p95 "
            f"{'not measured' if latency is None else f'{latency:.0f} ms'} "
            f"(budget {inputs.gates.latency_p95_ms:g} ms)",
        ),
        _manual("implementation.code_review", signoffs, verified_only=verified_only),
        lambda: audit_log_item(settings),
        Item(
            "implementation",
            "implementation.security_scanning",
            "Security scanning (bandit)",
            bandit.status,
            bandit.detail,
            True,
            bandit.evidence,
        ),
        Item(
            "implementation",
            "implementation.dependency_audit",
            "Dependency audit (pip-audit)",
            audit.status,
            audit.detail,
            True,
            audit.evidence,
        ),
        _tests(inputs),
        _static_analysis(inputs),
        _pii_detection,
        _files_item(
            "deployment.automation",
            "Deployment automation",
            root,
            ["Makefile", "workspace.yaml", "pyproject.toml"],
            "deployment",
        ),
        Item(
            "deployment",
            "deployment.rollback_procedures",
            "Rollback procedures documented and scripted",
            "fail" if rollback_gaps else "pass",
            f"runbooks lack: {rollback_gaps}"
            if rollback_gaps
            else "`agent-platform models rollback` and `index restore` are documented",
        ),
        _monitoring(settings),
        Item(
            "operations",
            "operations.metrics",
            "Quality metrics recorded in MLflow",
            "pass" if champion and champion.evaluated else "missing",
            f"evaluation run {champion.tags.get('eval.run_id')}"
            if champion and champion.evaluated
            else "no evaluated champion",
        ),
        Item(
            "operations",
            "operations.alerts",
            "Daily quality-gate alert ran",
            "missing"
            if not checked
            else (
                "pass"
                if _age(checked) <= QUALITY_CHECK_MAX_AGE and quality_passed == "true"
                else "fail"
            ),
            f"last daily_quality_gate check {checked}, passed={quality_passed}"
            if checked
            else "the daily_quality_gate schedule has not checked the champion yet",
        ),
        _manual("operations.dashboards", signoffs, verified_only=verified_only),
        _runbooks(root),
        _manual("operations.incident_procedures", signoffs, verified_only=verified_only),
        backup,
        recovery,
        *_quality_gates(inputs),
    ]
    return [i() if callable(i) else i for i in items]


def _telemetry_exporter(profile: Profile) -> tuple[str | None, str | None, str | None]:
    """(exporter the runtime would use in `profile`, why it cannot start if it cannot, the OTLP
    traces endpoint it would send to)."""
    from agent_platform.runtime.config import RuntimeSettings

    try:
        telemetry = RuntimeSettings().telemetry
        exporter = telemetry.resolved_exporter(profile)
    except ValueError as exc:
        return None, str(exc), None
    return exporter, None, evidence.otlp_endpoint(telemetry.otlp_endpoint)
