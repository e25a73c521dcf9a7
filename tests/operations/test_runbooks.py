"""Every alert has a runbook under docs/runbooks/ with steps and an escalation path, and the
readiness report's `operations.runbooks` item fails when one is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent_platform.readiness import evidence
from tests.operations.conftest import REPO

RUNBOOKS = REPO / "docs" / "runbooks"


@pytest.mark.parametrize("alert", [a.name for a in evidence.alert_runbooks(REPO)])
def test_every_alert_has_a_runbook_with_steps_and_escalation(alert: str) -> None:
    found = {a.name: a for a in evidence.alert_runbooks(REPO)}[alert]
    path = REPO / found.runbook
    assert path.parent == RUNBOOKS and path.is_file(), f"{alert}: {found.runbook}"
    text = path.read_text(encoding="utf-8")
    assert text.startswith(f"# {alert}\n")
    for heading in ("## Diagnose", "## Mitigate", "## Escalation"):
        assert heading in text, f"{path.name} lacks {heading}"
    escalation = text.split("## Escalation", 1)[1]
    assert escalation.count("\n1. ") + escalation.count("\n2. ") >= 2, path.name
    assert found.problem is None


def test_the_runbook_index_lists_every_alert() -> None:
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    for alert in evidence.alert_runbooks(REPO):
        assert f"| {alert.name} |" in index


def test_a_missing_runbook_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "deploy", root / "deploy")
    shutil.copytree(RUNBOOKS, root / "docs" / "runbooks")
    (root / "docs" / "runbooks" / "backup-stale.md").unlink()
    problems = {a.name: a.problem for a in evidence.alert_runbooks(root) if a.problem}
    assert list(problems) == ["AgentPlatformBackupStale"]
    assert "docs/runbooks/backup-stale.md" in problems["AgentPlatformBackupStale"]


def test_the_readiness_item_fails_without_an_alert_runbook(tmp_path: Path) -> None:
    from agent_platform.readiness.checklist import _runbooks

    assert _runbooks(REPO).status == "pass", _runbooks(REPO).detail
    root = tmp_path / "repo"
    shutil.copytree(REPO / "deploy", root / "deploy")
    shutil.copytree(REPO / "docs", root / "docs")
    (root / "docs" / "runbooks" / "high-latency.md").write_text("# AgentPlatformHighLatency\n")
    item = _runbooks(root)
    assert item.status == "fail"
    assert (
        "alert AgentPlatformHighLatency (docs/runbooks/high-latency.md has no steps" in item.detail
    )


def test_runbook_commands_exist() -> None:
    """Each `agent-platform …` command the alert runbooks name is a real command."""
    import re

    from typer.testing import CliRunner

    from agent_platform.cli.main import app

    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(RUNBOOKS.glob("*.md")))
    commands = {tuple(c.split()[:2]) for c in re.findall(r"`agent-platform ([^`]+)`", text)}
    assert len(commands) > 5
    for words in sorted(commands):
        words = tuple(w for w in words if w.isidentifier())
        result = CliRunner().invoke(app, [*words, "--help"])
        assert result.exit_code == 0, (words, result.output[-500:])
