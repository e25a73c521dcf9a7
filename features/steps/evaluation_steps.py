"""Steps of a release manager who evaluates candidate agent versions against a question set and
promotes one: the evaluation through the Python API (the service the Dagster asset runs), the
promotions through the CLI."""

from __future__ import annotations

import json

from behave import given, then, when
from behave.runner import Context
from cli import agent_platform, json_out, one_error_line, succeeded

from agent_platform.evaluation import EvaluationService, load_plan
from agent_platform.settings import get_settings

AGENT = "grounded-qa"


@given('the evaluation questions about tenant "{tenant}" are')
def questions(context: Context, tenant: str) -> None:
    rows = [
        {
            "id": f"q{number}",
            "question": row["question"],
            "reference": row["reference"],
            "key_facts": [row["key fact"]],
            "relevant_sources": [row["source"]],
        }
        for number, row in enumerate(context.table, start=1)
    ]
    context.dataset = context.workdir / "questions.jsonl"
    context.dataset.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    context.eval_tenant = tenant


@given("the candidate agents are")
def candidates(context: Context) -> None:
    context.candidates = {
        row["candidate"]: (row["search"], int(row["passages"]), float(row["minimum relevance"]))
        for row in context.table
    }


@when("the release manager evaluates the candidates with an accuracy gate of {accuracy:g}")
def evaluate(context: Context, accuracy: float) -> None:
    plan = context.workdir / "agents.toml"
    lines = [
        f'agent = "{AGENT}"',
        f'tenant = "{context.eval_tenant}"',
        f'dataset = "{context.dataset.name}"',
        "repeats = 1",
        "[gates]",
        f"accuracy = {accuracy}",
        "consistency = 0.5",
        "compliance = 0.0",
        "latency_p95_ms = 60000.0",
    ]
    for name, (mode, k, relevance) in context.candidates.items():
        lines += [
            f"[candidates.{name}]",
            'models = ["extractive"]',
            f'retrieval = {{ k = {k}, mode = "{mode}", min_relevance = {relevance} }}',
        ]
    plan.write_text("\n".join(lines) + "\n", encoding="utf-8")
    service = EvaluationService(get_settings(), plan=load_plan(plan))
    context.round = {e.candidate: e for e in service.run_round().evaluations}


@then('candidate "{name}" is version {version:d} and fails its {gate} gate')
def fails_gate(context: Context, name: str, version: int, gate: str) -> None:
    evaluation = context.round[name]
    assert evaluation.version.version == version, evaluation.version
    failed = [g.name for g in evaluation.gates if not g.passed]
    assert failed == [gate], [g.message for g in evaluation.gates]


@then('candidate "{name}" is version {version:d} and passes every gate')
def passes_gates(context: Context, name: str, version: int) -> None:
    evaluation = context.round[name]
    assert evaluation.version.version == version, evaluation.version
    assert evaluation.passed, [g.message for g in evaluation.gates]


@when("the release manager promotes agent version {version:d}")
def promote(context: Context, version: int) -> None:
    context.promoted = agent_platform(
        "--as", "release", "models", "promote", version, "--agent", AGENT
    )


@then('the promotion is refused with the reason "{reason}"')
def refused(context: Context, reason: str) -> None:
    line = one_error_line(context.promoted)
    assert "failed its quality gates" in line and reason in line, line


@then("agent version {version:d} is the champion and the audit log says who promoted it")
def champion(context: Context, version: int) -> None:
    out = succeeded(context.promoted).stdout
    assert f"-> v{version} by release" in out, out
    listing = json_out(agent_platform("models", "list", AGENT, "--json"))
    versions = {v["version"]: v for v in listing}
    assert "champion" in versions[version]["aliases"], versions
    assert all("champion" not in v["aliases"] for n, v in versions.items() if n != version)
    history = succeeded(agent_platform("models", "history", AGENT)).stdout
    assert f"promote champion v- -> v{version} by release" in history, history
