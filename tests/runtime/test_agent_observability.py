"""Traces, metrics and logs of agent requests; the prompt A/B variant recorded with each; CLI."""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path

import pytest
import typer
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from agent_platform.cli.run import run_command, runtime_app
from agent_platform.prompts import (
    ApproverRoles,
    MlflowPromptStore,
    PromotionService,
    PromptRepository,
    ReviewLog,
    publish_prompt,
)
from agent_platform.prompts.ab import AbSplit
from agent_platform.prompts.repository import BUILTIN_PROMPTS_DIR
from agent_platform.runtime.telemetry import JsonLogFormatter
from agent_platform.settings import Settings

AGENT_TENANT = "handbook"
QUESTION = "How long does standard shipping take?"


def exported_spans(runtime) -> list[dict]:
    runtime.telemetry.provider.force_flush()
    path = runtime.settings.home_dir / "telemetry" / "traces.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_trace_id_is_the_exported_request_span_with_phase_and_model_spans(make_runtime) -> None:
    runtime = make_runtime()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("agent_platform.runtime.agent")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        response = runtime.run(tenant=AGENT_TENANT, user="ivy", input=QUESTION)
    finally:
        logger.removeHandler(handler)

    spans = [
        s
        for s in exported_spans(runtime)
        if s["context"]["trace_id"].removeprefix("0x") == response.trace_id
    ]
    by_name = {s["name"]: s for s in spans}
    root = by_name["invoke_agent default-agent"]
    assert root["parent_id"] is None
    attrs = root["attributes"]
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["gen_ai.conversation.id"] == response.session_id
    assert attrs["agent_platform.prompt.version"] == 1
    assert attrs["agent_platform.prompt.variant"] == "none"
    assert attrs["gen_ai.usage.input_tokens"] == response.usage.input_tokens
    root_id = root["context"]["span_id"]
    for phase in ("validate", "authorise", "load_context", "execute_model"):
        assert by_name[f"agent.{phase}"]["parent_id"] == root_id
    chat = by_name["chat extractive"]  # the router's GenAI span, inside execute_model
    assert chat["parent_id"] == by_name["agent.execute_model"]["context"]["span_id"]
    assert chat["attributes"]["gen_ai.usage.output_tokens"] == response.usage.output_tokens

    record = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert record["trace_id"] == response.trace_id and record["outcome"] == "answered"
    assert record["prompt_variant"] == "none" and record["session_id"] == response.session_id

    labels = {
        "tenant": AGENT_TENANT,
        "agent": "default-agent",
        "outcome": "answered",
        "prompt": "grounded_qa_system",
        "prompt_version": "1",
        "variant": "none",
    }
    metrics = runtime.telemetry.metrics
    assert metrics.value("agent_platform_agent_requests_total", labels) == 1
    assert (
        metrics.value("agent_platform_agent_phase_latency_seconds_count", {"phase": "load_context"})
        == 1
    )
    served = [
        sample
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
        if sample.name == "agent_platform_agent_requests_total" and sample.labels == labels
    ]
    assert [sample.value for sample in served] == [1.0]  # what /metrics serves, not just a name


@pytest.fixture
def ab_settings(agent_home: Path, tmp_path: Path) -> Settings:
    """A copy of the shared home where grounded_qa_system v2 is A/B tested against v1 (50 %)."""
    home = tmp_path / "home"
    shutil.copytree(agent_home, home)
    settings = Settings(home=home)
    prompts = tmp_path / "prompts"
    shutil.copytree(BUILTIN_PROMPTS_DIR, prompts)
    path = prompts / "grounded_qa_system.jinja"
    path.write_text(
        path.read_text().replace("Write a short, direct answer", "Write a direct answer")
    )
    store = MlflowPromptStore(settings.resolved_mlflow_tracking_uri)
    assert publish_prompt(
        PromptRepository.from_dirs([prompts]), store, "grounded_qa_system"
    ).created
    service = PromotionService(
        store,
        ReviewLog.under(home),
        ApproverRoles(approvers={"prompt-owner-lead": ["prompt-owner"], "safety-lead": ["safety"]}),
    )
    for role in ("prompt-owner", "safety"):
        service.approve("grounded_qa_system", 2, role=role, by=f"{role}-lead")
    service.start_ab("grounded_qa_system", 2, traffic=0.5, by="release")
    return settings


def test_the_ab_variant_is_served_and_recorded(make_runtime, ab_settings) -> None:
    split = AbSplit("grounded_qa_system", 1, 2, 0.5)
    users: dict[str, str] = {}
    for n in range(100):
        users.setdefault(split.assign(f"user-{n}")[0], f"user-{n}")
    runtime = make_runtime(settings=ab_settings)
    served = {}
    for variant, user in sorted(users.items()):
        response = runtime.run(tenant=AGENT_TENANT, user=user, input=QUESTION)
        served[variant] = (response.prompt.version, response.prompt.variant, response.trace_id)
        assert response.citations  # both versions answer
    assert served["control"][:2] == (1, "control")
    assert served["challenger"][:2] == (2, "challenger")
    metrics = runtime.telemetry.metrics
    for variant, (version, _, trace_id) in served.items():
        labels = {
            "tenant": AGENT_TENANT,
            "agent": "default-agent",
            "outcome": "answered",
            "prompt": "grounded_qa_system",
            "prompt_version": str(version),
            "variant": variant,
        }
        assert metrics.value("agent_platform_agent_requests_total", labels) == 1
        logged = [r for r in runtime.request_log.read() if r["trace_id"] == trace_id]
        assert logged[0]["prompt"]["variant"] == variant
    roots = [s for s in exported_spans(runtime) if s["name"].startswith("invoke_agent")]
    variants = {s["attributes"].get("agent_platform.prompt.variant") for s in roots}
    assert {"control", "challenger"} <= variants


def test_cli_run_graph_history_and_rollback(agent_home: Path) -> None:
    app = typer.Typer()
    app.command("run")(run_command)
    app.add_typer(runtime_app, name="runtime")
    runner = CliRunner(env={"AGENT_PLATFORM_HOME": str(agent_home), "COLUMNS": "200"})

    graph = runner.invoke(app, ["runtime", "graph"])
    assert graph.exit_code == 0, graph.output
    assert "validate --> authorise;" in graph.output
    assert "validate_output -. &nbsp;retry&nbsp; .-> execute_model;" in graph.output

    args = ["run", "--tenant", AGENT_TENANT, "--user", "judy", "--json", QUESTION]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    payload = json.loads(first.output)
    assert "3 to 5 business days" in payload["answer"]
    assert payload["citations"][0]["source"] == "shipping.md"
    assert payload["state_version"] == 1 and len(payload["trace_id"]) == 32
    session = payload["session_id"]

    text = runner.invoke(
        app,
        ["run", "--tenant", AGENT_TENANT, "--user", "judy", "--session", session, QUESTION],
    )
    assert text.exit_code == 0, text.output
    assert "Sources:\n  [1] shipping.md (chunk " in text.output
    assert f"session_id: {session}  state_version: 2" in text.output

    scope = ["--session", session, "--tenant", AGENT_TENANT, "--user", "judy"]
    rolled = runner.invoke(app, ["runtime", "rollback", "1", *scope])
    assert rolled.exit_code == 0, rolled.output
    assert "version 3 now holds version 1 (2 turn(s))" in rolled.output
    history = runner.invoke(app, ["runtime", "history", *scope])
    assert history.output.splitlines() == [
        "v1  2 turn(s)",
        "v2  4 turn(s)",
        "v3  2 turn(s)  (restored from v1)",
    ]

    bad = runner.invoke(app, ["run", "--tenant", AGENT_TENANT, "--user", "judy", "   "])
    assert bad.exit_code == 2
    assert "error: input: String should have at least 1 character" in bad.output
    unknown = runner.invoke(app, ["run", "--tenant", "nobody", "--user", "judy", QUESTION])
    assert unknown.exit_code == 1 and "unknown tenant 'nobody'" in unknown.output
    assert "trace_id: " in unknown.output
