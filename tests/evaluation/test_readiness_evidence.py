"""Readiness items pass only on evidence that they hold (issue 8, item 9): a pip-audit that
audited nothing, a docs directory without an incident runbook, traces written to a local file."""

from __future__ import annotations

import os
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_platform.evaluation.candidates import DEFAULT_PLAN_PATH
from agent_platform.evaluation.gates import GateThresholds
from agent_platform.readiness.checklist import ChecklistInputs, evaluate_checklist
from agent_platform.readiness.tools import audit_outcome, run_pip_audit
from agent_platform.settings import Settings

PROJECT_ROOT = DEFAULT_PLAN_PATH.parent.parent


def _items(settings: Settings, root: Path = PROJECT_ROOT) -> dict[str, object]:
    inputs = ChecklistInputs(
        settings=settings,
        project_root=root,
        tenant="sample",
        champion=None,
        gates=GateThresholds(),
        dataset_version="unused",
        run_tools=False,
    )
    return {i.key: i for i in evaluate_checklist(inputs)}


# --- pip-audit ---------------------------------------------------------------------------------


def test_pip_audit_that_audited_nothing_is_not_verified(tmp_path: Path) -> None:
    """Offline (as here), pip-audit skips every package and still says "No known
    vulnerabilities found"; the item must not pass on that."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.16.0\nidna==3.7\n")
    outcome = run_pip_audit(requirements=requirements, timeout_s=120)
    if outcome.status == "error":  # pip-audit is a dependency: under CI a broken run is a failure
        message = f"pip-audit did not produce a report: {outcome.detail}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    if outcome.evidence.get("audited"):  # a machine that reaches PyPI audits for real
        assert outcome.status in ("pass", "fail")
        return
    assert outcome.status == "unverified", outcome.detail
    assert "audited 0 of 2 packages (0%)" in outcome.detail
    assert "Dependency not found on PyPI and could not be audited" in outcome.detail
    assert outcome.evidence["audited_share"] == 0.0


def test_pip_audit_report_format_partial_vulnerable_and_clean() -> None:
    """pip-audit's JSON report (format of pip-audit 2.x): a skip is not an audit."""
    clean = {"name": "idna", "version": "3.7", "vulns": []}
    skipped = {
        "name": "six",
        "skip_reason": "Dependency not found on PyPI and could not be audited: six (1.16.0)",
    }
    vulnerable = {
        "name": "jinja2",
        "version": "3.1.2",
        "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"], "aliases": []}],
    }
    partial = audit_outcome({"dependencies": [clean, skipped], "fixes": []})
    assert partial.status == "unverified"
    assert "audited 1 of 2 packages (50%)" in partial.detail
    assert partial.evidence["skipped"] == ["six"]
    failed = audit_outcome({"dependencies": [clean, vulnerable, skipped], "fixes": []})
    assert failed.status == "fail" and "jinja2 3.1.2: GHSA-h5c8-rqwp-cp95" in str(failed.evidence)
    passed = audit_outcome({"dependencies": [clean], "fixes": []})
    assert passed.status == "pass" and "audited 1 of 1 packages (100%)" in passed.detail
    assert audit_outcome({"dependencies": [], "fixes": []}).status == "unverified"


def test_readiness_cli_shows_not_verified(tmp_path: Path) -> None:
    """The status reads "not verified" where a person sees it."""
    from agent_platform.readiness.checklist import Item
    from agent_platform.readiness.report import ReadinessReport

    outcome = audit_outcome({"dependencies": [{"name": "six", "skip_reason": "offline: six"}]})
    item = Item(
        "implementation",
        "implementation.dependency_audit",
        "Dependency audit",
        outcome.status,
        outcome.detail,
    )
    report = ReadinessReport("grounded-qa", None, "now", [item])
    assert "| Dependency audit | not verified | automatic |" in report.markdown()
    assert "not verified" in report.html() and not item.ok


# --- runbooks ----------------------------------------------------------------------------------


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "docs", root / "docs")
    return root


def test_docs_without_an_incident_runbook_fail(settings: Settings, project_copy: Path) -> None:
    (project_copy / "docs" / "runbooks.md").unlink()
    item = _items(settings, project_copy)["operations.runbooks"]
    assert item.status == "fail"
    assert "incident response" in item.detail and "corruption" not in item.detail.split(";")[0]


def test_a_heading_without_steps_is_not_a_runbook(settings: Settings, project_copy: Path) -> None:
    (project_copy / "docs" / "runbooks.md").write_text(
        "# Runbooks\n\n## Incident response\n\nWe take incidents seriously.\n"
    )
    assert _items(settings, project_copy)["operations.runbooks"].status == "fail"
    (project_copy / "docs" / "runbooks.md").write_text(
        "# Runbooks\n\n## Incident response\n\n1. Roll back: `agent-platform models rollback`.\n"
    )
    item = _items(settings, project_copy)["operations.runbooks"]
    assert item.status == "pass", item.detail
    assert "incident response: docs/runbooks.md § Incident response" in item.detail


def test_the_project_holds_every_runbook(settings: Settings) -> None:
    item = _items(settings)["operations.runbooks"]
    assert item.status == "pass", item.detail


def test_runbook_commands_exist() -> None:
    """Each `agent-platform …` command a runbook names is a real command (its --help works)."""
    from typer.testing import CliRunner

    from agent_platform.cli.main import app

    text = (PROJECT_ROOT / "docs" / "runbooks.md").read_text()
    commands = {tuple(c.split()[:2]) for c in re.findall(r"`agent-platform ([^`]+)`", text)}
    assert commands
    for words in sorted(commands):
        words = tuple(w for w in words if w.isidentifier())
        result = CliRunner().invoke(app, [*words, "--help"])
        assert result.exit_code == 0, (words, result.output[-500:])


# --- monitoring --------------------------------------------------------------------------------


@pytest.fixture
def collector() -> Iterator[str]:
    """Something listening on a loopback port, as an OTLP collector would."""
    server = socket.create_server(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("profile", "endpoint", "status", "detail"),
    [
        ("local", None, "fail", "traces go to a local JSON file"),
        ("production", "collector", "pass", "accepts connections"),
        ("production", "closed", "fail", "not reachable"),
        ("production", None, "fail", "no endpoint is set"),
    ],
)
def test_monitoring_passes_only_when_traces_reach_a_collector(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    collector: str,
    profile: str,
    endpoint: str | None,
    status: str,
    detail: str,
) -> None:
    for variable in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)
    if endpoint:
        url = collector if endpoint == "collector" else f"http://127.0.0.1:{_closed_port()}"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    item = _items(settings.model_copy(update={"profile": profile}))["deployment.monitoring"]
    assert item.status == status, item.detail
    assert detail in item.detail
