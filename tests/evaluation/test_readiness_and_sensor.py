"""Readiness items from real tools and files, sign-offs, and the evaluation-request sensor."""

import json
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from agent_platform.cli.execution import run_tenant_job
from agent_platform.cli.readiness import readiness_app
from agent_platform.evaluation import load_plan
from agent_platform.evaluation.candidates import DEFAULT_PLAN_PATH
from agent_platform.model_registry import AgentModelRegistry
from agent_platform.readiness import SignoffError, SignoffStore, build_report, write_report
from agent_platform.readiness.tools import run_bandit
from agent_platform.settings import Settings
from resources.model_registry import EvaluationResource, LocalModelRegistryResource
from sensors.evaluation import daily_quality_gate, evaluation_request_sensor
from tests.evaluation.conftest import DATASET


def test_bandit_fails_on_a_high_severity_issue(tmp_path: Path) -> None:
    (tmp_path / "clean.py").write_text("def add(a, b):\n    return a + b\n")
    assert run_bandit([tmp_path]).status == "pass"
    (tmp_path / "bad.py").write_text("import subprocess\nsubprocess.call(input(), shell=True)\n")
    outcome = run_bandit([tmp_path])
    assert outcome.status == "fail" and "high-severity" in outcome.detail
    missing = run_bandit([tmp_path / "missing-dir"])  # scanning nothing is not a pass
    assert missing.status == "error" and "missing-dir" in missing.detail


def test_signoffs_are_recorded_and_unknown_items_refused(settings: Settings) -> None:
    store = SignoffStore.under(settings.home_dir)
    with pytest.raises(SignoffError, match="not a manual readiness item"):
        store.sign("operations.coffee", by="alice")
    store.sign("operations.dashboards", by="alice", note="grafana/agents")
    assert store.get("operations.dashboards").by == "alice"
    result = CliRunner().invoke(
        readiness_app, ["signoff", "implementation.code_review"], env={"AGENT_PLATFORM_AS": "bob"}
    )
    assert result.exit_code == 0, result.output
    signed = SignoffStore.under(settings.home_dir).get("implementation.code_review")
    assert (signed.by, signed.verified) == ("bob", False)  # the local profile's `--as bob`


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
    first = _tick(resources)  # nothing was evaluated on this home yet: evaluate
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


def _tick(
    resources: dict[str, object],
    cursor: str | None = None,
    instance: dg.DagsterInstance | None = None,
) -> dg.SensorResult:
    instance = instance or dg.DagsterInstance.ephemeral()
    with dg.build_sensor_context(cursor=cursor, resources=resources, instance=instance) as context:
        return evaluation_request_sensor(context)


def _reason(result: dg.SensorResult) -> str:
    assert len(result.run_requests) == 1, result.skip_reason
    return result.run_requests[0].tags["evaluation/reason"]


def test_sensor_requests_evaluation_on_new_index_snapshot(home: Path) -> None:
    resources = {
        "evaluation": EvaluationResource(),
        "model_registry": LocalModelRegistryResource(home=str(home)),
    }
    cursor = _tick(resources).cursor
    assert not _tick(resources, cursor).run_requests
    backup = run_tenant_job(Settings(home=home), "index_backup_job", "sample")
    assert backup.success, backup.failures
    reason = _reason(_tick(resources, cursor))
    changed = set(reason.split(", "))
    assert changed == {f"{key}.index_snapshot_id" for key in load_plan().candidates}


def test_sensor_requests_evaluation_on_new_or_changed_agent_configuration(
    home: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "agents.toml"
    text = DEFAULT_PLAN_PATH.read_text().replace('"datasets/sample.jsonl"', f'"{DATASET}"')
    plan.write_text(text)
    resources = {
        "evaluation": EvaluationResource(plan_path=str(plan)),
        "model_registry": LocalModelRegistryResource(home=str(home)),
    }
    cursor = _tick(resources).cursor
    assert not _tick(resources, cursor).run_requests
    # the extractive candidate retrieves fewer chunks: only its configuration changed
    hybrid = 'retrieval = { k = 5, mode = "hybrid" }'
    assert text.count(hybrid) == 2
    plan.write_text(text.replace(hybrid, 'retrieval = { k = 3, mode = "hybrid" }', 1))
    changed = _tick(resources, cursor)
    assert set(_reason(changed).split(", ")) == {"extractive.config", "plan.content_hash"}
    # a new candidate appears
    cursor = changed.cursor
    plan.write_text(plan.read_text() + '[candidates.keyword]\nmodels = ["extractive"]\n')
    added = set(_reason(_tick(resources, cursor)).split(", "))
    assert {"keyword.config", "keyword.prompts", "keyword.index_snapshot_id"} <= added
    assert not any(c.startswith(("extractive.", "gemma.")) for c in added)


def test_evaluation_sensor_and_quality_gate_schedule_run_by_default(settings: Settings) -> None:
    from agent_platform.definitions import build_definitions

    assert evaluation_request_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert daily_quality_gate.default_status == dg.DefaultScheduleStatus.RUNNING
    repository = build_definitions(settings).get_repository_def()
    sensors = {s.name: s.default_status for s in repository.sensor_defs}
    schedules = {s.name: s.default_status for s in repository.schedule_defs}
    assert "evaluation_request_sensor" in sensors and "daily_quality_gate" in schedules
    assert set(sensors.values()) == {dg.DefaultSensorStatus.RUNNING}, sensors
    assert set(schedules.values()) == {dg.DefaultScheduleStatus.RUNNING}, schedules
