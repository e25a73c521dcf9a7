"""Readiness items from real tools and files, sign-offs, and the evaluation-request sensor."""

import json
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from agent_platform.cli.readiness import readiness_app
from agent_platform.evaluation import load_plan
from agent_platform.model_registry import AgentModelRegistry
from agent_platform.readiness import SignoffError, SignoffStore, build_report, write_report
from agent_platform.readiness.tools import run_bandit
from agent_platform.settings import Settings
from resources.model_registry import EvaluationResource, LocalModelRegistryResource
from sensors.evaluation import evaluation_request_sensor


def test_bandit_fails_on_a_high_severity_issue(tmp_path: Path) -> None:
    (tmp_path / "clean.py").write_text("def add(a, b):\n    return a + b\n")
    assert run_bandit([tmp_path]).status == "pass"
    (tmp_path / "bad.py").write_text("import subprocess\nsubprocess.call(input(), shell=True)\n")
    outcome = run_bandit([tmp_path])
    assert outcome.status == "fail" and "high-severity" in outcome.detail
    assert run_bandit([tmp_path / "missing-dir"]).status in {"error", "pass"}


def test_signoffs_are_recorded_and_unknown_items_refused(settings: Settings) -> None:
    store = SignoffStore.under(settings.home_dir)
    with pytest.raises(SignoffError, match="not a manual readiness item"):
        store.sign("operations.coffee", by="alice")
    store.sign("operations.dashboards", by="alice", note="grafana/agents")
    assert store.get("operations.dashboards").by == "alice"
    result = CliRunner().invoke(
        readiness_app, ["signoff", "implementation.code_review", "--by", "bob"]
    )
    assert result.exit_code == 0, result.output
    assert SignoffStore.under(settings.home_dir).get("implementation.code_review").by == "bob"


def test_report_without_champion_is_not_ready(eval_settings: Settings) -> None:
    registry = AgentModelRegistry.from_settings(eval_settings)
    report = write_report(
        build_report(eval_settings, load_plan(), registry, run_tools=False), eval_settings, registry
    )
    assert not report.ready and report.champion is None
    by_key = {i.key: i for i in report.items}
    assert by_key["quality_gates.champion"].status == "missing"
    assert by_key["implementation.dependency_audit"].detail.startswith("could not run")
    assert by_key["architecture.security_review"].status == "missing"
    assert by_key["operations.backups"].status == "missing"
    assert Path(report.paths["html"]).read_text().startswith("<!doctype html>")
    assert "NOT READY" in Path(report.paths["markdown"]).read_text()
    result = CliRunner().invoke(readiness_app, ["--json", "--no-tools"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["ready"] is False


def test_sensor_requests_evaluation_on_new_prompt_version(home: Path, tmp_path: Path) -> None:
    from agent_platform.prompts import MlflowPromptStore

    resources = {
        "evaluation": EvaluationResource(),
        "model_registry": LocalModelRegistryResource(home=str(home)),
    }
    with dg.build_sensor_context(resources=resources) as context:
        first = evaluation_request_sensor(context)
    assert len(first.run_requests) == 1
    cursor = first.cursor
    with dg.build_sensor_context(cursor=cursor, resources=resources) as context:
        assert not evaluation_request_sensor(context).run_requests
    store = MlflowPromptStore(Settings(home=home).resolved_mlflow_tracking_uri)
    latest = store.latest("grounded_qa_system")
    new = store.register("grounded_qa_system", latest.template + "\n", latest.tags, "touch")
    store.set_alias("grounded_qa_system", "candidate", new.version)  # what `publish` does
    with dg.build_sensor_context(cursor=cursor, resources=resources) as context:
        again = evaluation_request_sensor(context)
    assert len(again.run_requests) == 1
    assert "prompts" in again.run_requests[0].tags["evaluation/reason"]
