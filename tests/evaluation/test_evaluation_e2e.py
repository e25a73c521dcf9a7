"""End to end on the embedded default: the sample tenant indexed from docs/, prompts registered,
the real runtime answering, real Dagster materializations and a real MLflow store."""

import json
from pathlib import Path

import dagster as dg

from agent_platform.cli.execution import run_tenant_job
from agent_platform.evaluation import EvaluationService, evaluate, load_dataset, load_plan
from agent_platform.model_registry import CHALLENGER, CHAMPION, AgentModelRegistry
from agent_platform.readiness import build_report
from agent_platform.settings import Settings
from assets.evaluation import (
    champion_promotion,
    champion_quality,
    evaluated_model_versions,
    evaluation_dataset,
    evaluation_dataset_valid,
    gate_checks,
)
from resources.model_registry import EvaluationResource, LocalModelRegistryResource
from tests.evaluation.conftest import DATASET

ASSETS = [evaluation_dataset, evaluated_model_versions, champion_promotion]
CHECKS = [evaluation_dataset_valid, *gate_checks]
GRAPH = [*ASSETS, *CHECKS]


def small_plan(tmp_path: Path, extra: str = "", gates: str = "", dataset: Path = DATASET) -> Path:
    """A plan over the shipped dataset (or `dataset`): extractive, plus `extra` candidate tables."""
    path = tmp_path / "agents.toml"
    path.write_text(
        f'agent = "grounded-qa"\ntenant = "sample"\ndataset = "{dataset}"\nrepeats = 1\n'
        f"[gates]\n{gates}\n"
        '[candidates.extractive]\nmodels = ["extractive"]\n' + extra
    )
    return path


def resources(home: Path, plan: Path, **gates: float) -> dict[str, object]:
    return {
        "evaluation": EvaluationResource(plan_path=str(plan), **gates),
        "model_registry": LocalModelRegistryResource(home=str(home)),
    }


def test_failed_gates_block_promotion_and_everything_is_logged(home: Path, tmp_path: Path) -> None:
    plan = small_plan(tmp_path)
    result = dg.materialize(
        GRAPH,
        resources=resources(home, plan),
        raise_on_error=False,
    )
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["evaluation_dataset_valid"].passed
    meta = result.asset_materializations_for_node("evaluated_model_versions")[0].metadata
    assert "| extractive | v1 |" in meta["candidates"].value
    registry = AgentModelRegistry.from_settings(Settings(home=home))
    version = registry.by_alias("grounded-qa", CHALLENGER)
    metrics = version.metrics
    assert metrics["examples"] == 58 and metrics["errors"] == 0
    assert metrics["refusal_rate_unanswerable"] >= 0.8
    assert metrics["recall_at_k"] >= 0.9 and metrics["compliance"] == 1.0
    # the extractive agent does not reach the 0.95 accuracy gate: promotion is blocked, which is
    # an outcome, not a crash: the run succeeds and the promotion records why it did not happen
    assert metrics["accuracy"] < 0.95 and not checks["accuracy_gate"].passed
    assert result.success
    assert checks["accuracy_gate"].metadata["threshold"].value == 0.95
    promotion = result.asset_materializations_for_node("champion_promotion")[0].metadata
    decision = promotion["decision"].value
    assert decision.startswith(f"not promoted: accuracy {metrics['accuracy']:.3g} < 0.95"), decision
    assert promotion["promoted"].value is False
    assert registry.champion("grounded-qa") is None
    for tag in (
        "index_snapshot_id",
        "embedding_model",
        "dataset_version",
        "git_commit",
        "prompt.grounded_qa_system.version",
        "dagster_run_id",
    ):
        assert version.lineage[tag] not in ("", "none", "unregistered"), tag
    assert version.lineage["dagster_run_id"] == result.run_id
    # the model version carries only the tags a person filters on; the rest is on the LoggedModel
    assert {"candidate", "git_commit", "index_snapshot_id"} <= set(version.tags)
    assert not {"agent_config", "prompts", "embedding_model"} & set(version.tags)
    assert not [t for t in version.tags if t.startswith(("eval.metric.", "prompt."))], version.tags
    examples = EvaluationService(Settings(home=home), plan=load_plan(plan), registry=registry)
    table = examples.examples_of(version.tags["eval.run_id"])
    assert len(table) == 58 and {"correct", "groundedness", "latency_ms"} <= set(table.columns)


# a weaker agent: one vector hit, used only when cosine >= 0.5, instead of five hybrid ones
# (accuracy 0.50 against 0.80 on the first 20 examples, measured 2026-12-07)
WEAK_K1 = (
    '[candidates.vector-k1]\nmodels = ["extractive"]\n'
    'retrieval = { k = 1, mode = "vector", min_relevance = 0.75 }\n'
)
# lenient thresholds where a test is about the comparison, not the gates (or machine load)
LENIENT_GATES = {"accuracy_gate": 0.3, "consistency_gate": 0.5, "latency_p95_budget_ms": 60_000.0}


def round_config(candidates: list[str], max_examples: int) -> dict:
    """Run config of `evaluated_model_versions` for one evaluation round."""
    settings = {"candidates": candidates, "max_examples": max_examples}
    return {"ops": {"evaluated_model_versions": {"config": settings}}}


def test_passing_challenger_is_promoted_then_compared(home: Path, tmp_path: Path) -> None:
    plan = small_plan(tmp_path, extra=WEAK_K1)
    gates = LENIENT_GATES
    config = round_config(["extractive"], 20)
    first = dg.materialize(GRAPH, resources=resources(home, plan, **gates), run_config=config)
    assert first.asset_materializations_for_node("champion_promotion")[0].metadata["promoted"].value
    registry = AgentModelRegistry.from_settings(Settings(home=home))
    assert registry.aliases("grounded-qa")[CHAMPION] == 1
    config["ops"]["evaluated_model_versions"]["config"]["candidates"] = ["vector-k1"]
    second = dg.materialize(
        GRAPH,
        resources=resources(home, plan, **gates),
        run_config=config,
        raise_on_error=False,
    )
    meta = second.asset_materializations_for_node("evaluated_model_versions")[0].metadata
    assert "correct: challenger" in meta["ab_comparison"].value
    assert meta["promotion_recommended"].value is False
    # the weak k=1 retrieval passes the lenient gates but loses the paired comparison
    reason = meta["promotion_reason"].value
    assert reason.startswith("correct: challenger") and reason.endswith("): worse"), reason
    assert registry.aliases("grounded-qa")[CHAMPION] == 1  # not better: champion stays


def test_a_better_challenger_replaces_the_champion(home: Path, tmp_path: Path) -> None:
    """The reverse of the test above: the weak k=1 agent serves first, then the hybrid extractive
    agent wins the paired comparison and is promoted, with the comparison as the recorded reason."""
    plan = small_plan(tmp_path, extra=WEAK_K1)
    first = round_config(["vector-k1"], 20)
    dg.materialize(GRAPH, resources=resources(home, plan, **LENIENT_GATES), run_config=first)
    registry = AgentModelRegistry.from_settings(Settings(home=home))
    weak = registry.champion("grounded-qa")
    assert weak.candidate == "vector-k1"
    second = dg.materialize(
        GRAPH,
        resources=resources(home, plan, **LENIENT_GATES),
        run_config=round_config(["extractive"], 20),
    )
    meta = second.asset_materializations_for_node("evaluated_model_versions")[0].metadata
    reason = meta["promotion_reason"].value
    assert meta["promotion_recommended"].value is True
    assert reason.startswith("correct: challenger") and reason.endswith("): better"), reason
    champion = registry.champion("grounded-qa")
    assert champion.candidate == "extractive" and champion.version != weak.version


def test_challenger_evaluation_leaves_the_champions_record_alone(
    home: Path, tmp_path: Path
) -> None:
    """The champion is re-run on the challenger's examples for the A/B comparison only: its
    registered metrics and verdict stay those of its own evaluation, and the comparison decides.
    Without paraphrases, a re-run without repeats would measure no consistency and fail a gate."""
    rows = [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]
    dataset = tmp_path / "no-paraphrases.jsonl"
    dataset.write_text("".join(json.dumps(row | {"paraphrases": []}) + "\n" for row in rows))
    twin = '[candidates.twin]\nmodels = ["extractive"]\ndescription = "extractive, re-registered"\n'
    plan = small_plan(tmp_path, extra=twin, dataset=dataset)
    gates = LENIENT_GATES
    config = {"ops": {"evaluated_model_versions": {"config": {"max_examples": 8}}}}
    config["ops"]["evaluated_model_versions"]["config"]["candidates"] = ["extractive"]
    dg.materialize(GRAPH, resources=resources(home, plan, **gates), run_config=config)
    registry = AgentModelRegistry.from_settings(Settings(home=home))
    champion = registry.champion("grounded-qa")
    assert champion.version == 1 and champion.gates_passed is True
    recorded = {k: v for k, v in champion.tags.items() if k.startswith("eval.")}
    assert champion.metrics["consistency"] == 1.0

    config["ops"]["evaluated_model_versions"]["config"]["candidates"] = ["twin"]
    second = dg.materialize(GRAPH, resources=resources(home, plan, **gates), run_config=config)
    meta = second.asset_materializations_for_node("evaluated_model_versions")[0].metadata
    assert meta["challenger_version"].value == 2 and meta["champion_version"].value == 1
    after = registry.get("grounded-qa", 1)
    assert {k: v for k, v in after.tags.items() if k.startswith("eval.")} == recorded
    # identical answers: the paired interval is [0, 0], so the twin does not replace the champion
    assert meta["promotion_recommended"].value is False
    assert "difference +0.000" in meta["promotion_reason"].value
    assert meta["promotion_reason"].value.endswith("inconclusive")
    assert registry.aliases("grounded-qa")[CHAMPION] == 1
    runs = registry.client.search_runs(
        [registry.experiment_id("grounded-qa")], "tags.kind = 'comparison'"
    )
    assert [(r.data.tags["model_version"], r.data.tags["compared_with"]) for r in runs] == [
        ("1", "2")
    ]
    assert runs[0].data.params["repeats"] == "0"  # a comparison reads answers, not consistency


def test_daily_quality_gate_fails_loudly_when_the_champion_drops(
    home: Path, tmp_path: Path
) -> None:
    plan = small_plan(tmp_path)
    lenient = {"accuracy_gate": 0.3, "consistency_gate": 0.5}
    config = {"ops": {"evaluated_model_versions": {"config": {"max_examples": 10}}}}
    dg.materialize(GRAPH, resources=resources(home, plan, **lenient), run_config=config)
    registry = AgentModelRegistry.from_settings(Settings(home=home))
    champion = registry.champion("grounded-qa")
    # the registered version serves the prompt versions it was evaluated with
    pinned = champion.config().system_prompt.version
    served = champion.lineage["prompt.grounded_qa_system.version"]
    assert pinned is not None and str(pinned) == served
    # a new index snapshot since promotion: the daily check still checks the champion itself
    assert run_tenant_job(Settings(home=home), "index_backup_job", "sample").success
    versions_before = len(registry.versions("grounded-qa"))
    strict = resources(home, small_plan(tmp_path, extra="max_examples = 10\n"), accuracy_gate=0.99)
    result = dg.materialize([champion_quality], resources=strict, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "dropped below its quality gates: accuracy FAILED" in str(
        failure.step_failure_data.error
    )
    champion = registry.champion("grounded-qa")
    assert champion.tags["quality.passed"] == "false"
    assert len(registry.versions("grounded-qa")) == versions_before
    checks = registry.client.search_runs(
        [registry.experiment_id("grounded-qa")], "tags.kind = 'quality_check'"
    )
    assert [r.data.tags["model_version"] for r in checks] == [str(champion.version)]
    report = build_report(Settings(home=home), load_plan(plan), registry, run_tools=False)
    by_key = {i.key: i for i in report.items}
    assert report.champion == champion.version and not report.ready
    assert by_key["operations.alerts"].status == "fail"  # the daily gate failed
    assert by_key["operations.backups"].status == "pass"
    assert by_key["operations.recovery_plans"].status == "pass"
    assert "data:image/png;base64," in report.html()  # trends and latency plots


def logged_requests(home: Path) -> int:
    log = home / "runtime" / "requests.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_runtime_errors_are_recorded_as_failures(home: Path) -> None:
    from agent_platform.runtime.agent import AgentRuntime

    examples = load_dataset(DATASET).examples[:3]
    with AgentRuntime.from_settings(Settings(home=home)) as runtime:
        result = evaluate(runtime, examples, agent="a", tenant="no-such-tenant", repeats=0)
    assert [e.example_id for e in result.examples] == [e.id for e in examples]
    assert result.metrics["errors"] == 3 and result.metrics["accuracy"] == 0
    assert "no-such-tenant" in result.examples[0].error


def test_examples_that_error_count_as_failures_among_answered_ones(home: Path) -> None:
    from agent_platform.runtime.agent import AgentRuntime
    from agent_platform.runtime.response import MAX_INPUT_CHARS

    answered = load_dataset(DATASET).examples[:3]
    too_long = answered[0].model_copy(
        update={"id": "too-long", "question": "x" * (MAX_INPUT_CHARS + 1), "paraphrases": []}
    )
    logged_before = logged_requests(home)
    with AgentRuntime.from_settings(Settings(home=home)) as runtime:
        result = evaluate(runtime, [*answered, too_long], agent="a", tenant="sample", repeats=0)
    by_id = {e.example_id: e for e in result.examples}
    assert list(by_id) == [*(e.id for e in answered), "too-long"]
    assert "input" in by_id["too-long"].error and not by_id["too-long"].compliant
    good = [by_id[e.id] for e in answered]
    assert not any(e.error for e in good) and all(e.compliant for e in good)
    metrics = result.metrics
    assert metrics["errors"] == 1
    assert metrics["compliance"] == 0.75  # the errored example is a compliance failure
    assert metrics["accuracy"] == sum(e.correct for e in good) / 4
    # one unscored warm-up request went first, and its latency is not among the scored ones
    assert result.warmup_ms > 0
    assert logged_requests(home) - logged_before == len(result.latencies_ms) + 1


def test_evaluation_sensor_starts_from_what_was_evaluated(home: Path, tmp_path: Path) -> None:
    """Switched on over an evaluated home (the first `make ui` after `make demo`), the sensor
    requests nothing; a snapshot taken since the evaluation still requests one."""
    from sensors.evaluation import evaluation_request_sensor

    plan = small_plan(tmp_path, extra="max_examples = 3\n")
    graph_resources = resources(home, plan, **LENIENT_GATES)
    storage = tmp_path / "dagster"  # one instance, opened twice around the backup job
    storage.mkdir()

    def tick(instance: dg.DagsterInstance) -> dg.SensorResult:
        with dg.build_sensor_context(resources=graph_resources, instance=instance) as context:
            return evaluation_request_sensor(context)

    with dg.instance_for_test(temp_dir=str(storage)) as instance:
        assert dg.materialize(GRAPH, resources=graph_resources, instance=instance).success
        first = tick(instance)
    assert not first.run_requests and first.cursor
    assert run_tenant_job(Settings(home=home), "index_backup_job", "sample").success
    with dg.instance_for_test(temp_dir=str(storage)) as instance:
        [request] = tick(instance).run_requests
    assert request.tags["evaluation/reason"] == "extractive.index_snapshot_id"
