"""Evaluated agent model versions: dataset → evaluation round → gate checks → champion promotion.

A failed gate is an expected outcome, not a crash: the gate checks report failure with the value
and the threshold without failing the run, and `champion_promotion` records why it did not
promote. The registry refuses a promotion without passing gates, so `champion` never moves on a
fail. In the composition root `evaluated_model_versions` also depends on the prompt versions and
the index snapshot its candidates use (`with_agent_lineage`), so the graph shows what a version
is made of.
"""

import json
import math
from collections.abc import Collection

import dagster as dg
from pydantic import Field

from agent_platform.evaluation import (
    CandidateEvaluation,
    EvaluationPlan,
    EvaluationRound,
    load_dataset,
)
from agent_platform.evaluation.gates import GATES, evaluate_gates
from agent_platform.model_registry import CHALLENGER, CHAMPION
from assets.knowledge import index_snapshot
from assets.prompts import version_key
from resources.model_registry import EvaluationResource, ModelRegistryResource

GROUP = "evaluation"


def _table(evaluations: list[CandidateEvaluation]) -> str:
    columns = ("accuracy", "consistency", "groundedness", "compliance", "recall_at_k", "mrr")
    header = "| candidate | version | gates | " + " | ".join(columns) + " | p95 ms | examples |"
    lines = [header, "|" + "---|" * (len(columns) + 5)]
    for e in evaluations:
        m = e.metrics
        values = " | ".join("-" if math.isnan(m[c]) else f"{m[c]:.3f}" for c in columns)
        lines.append(
            f"| {e.candidate} | v{e.version.version} | {'pass' if e.passed else 'FAIL'} | "
            f"{values} | {m['latency_p95_ms']:.0f} | {int(m['examples'])} |"
        )
    return "\n".join(lines)


@dg.asset(group_name=GROUP, kinds={"pandera", "jsonl"})
def evaluation_dataset(evaluation: EvaluationResource) -> dg.MaterializeResult:
    """The versioned question set (reference answers, key facts, relevant sources) for the plan."""
    path = evaluation.plan().dataset_path
    dataset = load_dataset(path)
    answerable = sum(e.answerable for e in dataset.examples)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(dataset.version),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dataset_version": dataset.version,
            "dagster/row_count": len(dataset.examples),
            "answerable": answerable,
            "unanswerable": len(dataset.examples) - answerable,
            "with_paraphrases": sum(bool(e.paraphrases) for e in dataset.examples),
            "invalid_rows": len(dataset.problems),
        },
    )


@dg.asset_check(asset=evaluation_dataset, blocking=True)
def evaluation_dataset_valid(evaluation: EvaluationResource) -> dg.AssetCheckResult:
    """Every row passes the pandera schema; failures name the line and the example id."""
    dataset = load_dataset(evaluation.plan().dataset_path)
    listed = "\n".join(f"- {p}" for p in dataset.problems) or "none"
    return dg.AssetCheckResult(
        passed=dataset.valid,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(str(p) for p in dataset.problems[:3]) or "valid",
        metadata={"invalid_rows": len(dataset.problems), "problems": dg.MetadataValue.md(listed)},
    )


class EvaluationConfig(dg.Config):
    """Which candidates of the plan to evaluate (all by default), and an optional example cap."""

    candidates: list[str] = Field(default_factory=list)
    max_examples: int | None = None


@dg.asset(group_name=GROUP, deps=[evaluation_dataset], kinds={"mlflow", "langgraph"})
def evaluated_model_versions(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    evaluation: EvaluationResource,
    model_registry: ModelRegistryResource,
) -> dg.MaterializeResult:
    """Each candidate registered as an agent model version and run through the real runtime on
    the dataset; the best becomes `challenger` and is compared with `champion` (paired bootstrap).
    """
    watched = evaluation.watched_state(model_registry, config.candidates or None)
    service = evaluation.service(model_registry, log=context.log.info)
    outcome: EvaluationRound = service.run_round(
        config.candidates or None, max_examples=config.max_examples, dagster_run_id=context.run_id
    )
    challenger = outcome.challenger
    promote, reason = outcome.should_promote()
    registry = service.registry
    if challenger is not None:
        version = str(challenger.version.version)
        for key, value in {
            "ab.promote": "true" if promote else "false",
            "ab.reason": reason[:4000],
            "ab.comparisons": json.dumps([c.summary() for c in outcome.comparisons]),
        }.items():
            registry.client.set_model_version_tag(challenger.version.name, version, key, value)
    comparisons = "\n".join(f"- {c.summary()}" for c in outcome.comparisons) or "no champion yet"
    return dg.MaterializeResult(
        metadata={
            "agent": service.plan.agent,
            "dataset_version": outcome.dataset.version,
            "candidates": dg.MetadataValue.md(_table(outcome.evaluations)),
            "challenger_version": challenger.version.version if challenger else -1,
            "champion_version": outcome.champion.version.version if outcome.champion else -1,
            "ab_comparison": dg.MetadataValue.md(comparisons),
            "promotion_recommended": promote,
            "promotion_reason": reason,
            "mlflow_runs": dg.MetadataValue.json(
                {e.candidate: e.run_id for e in outcome.evaluations}
            ),
            "mlflow_tracking_uri": registry.tracking_uri,
            "metrics": dg.MetadataValue.json(
                {
                    e.candidate: {k: v for k, v in e.metrics.items() if not math.isnan(v)}
                    for e in outcome.evaluations
                }
            ),
            "watched_state": dg.MetadataValue.json(watched),  # the evaluation sensor's baseline
        }
    )


def with_agent_lineage(
    asset: dg.AssetsDefinition, plan: EvaluationPlan, prompt_names: Collection[str]
) -> dg.AssetsDefinition:
    """`asset` depending on what the plan's agent versions are made of: the registered versions
    of the prompts its candidates use (those that have assets) and the index snapshot of the
    plan's tenant. Lineage only: the round resolves the same versions when it runs."""
    used = {
        ref.name
        for candidate in plan.candidates.values()
        for ref in (candidate.config.system_prompt, candidate.config.user_prompt)
    }
    deps = [
        *(dg.AssetDep(version_key(name)) for name in sorted(used & set(prompt_names))),
        dg.AssetDep(
            index_snapshot,
            partition_mapping=dg.SpecificPartitionsPartitionMapping([plan.tenant]),
        ),
    ]
    return asset.map_asset_specs(lambda spec: spec.merge_attributes(deps=deps))


def _gate_check(gate: str, metric: str, comparison: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=evaluated_model_versions,
        name=f"{gate}_gate",
        blocking=False,  # a failed gate blocks the promotion, not the run
        description=f"The challenger's {metric} must be {comparison} the configured threshold.",
    )
    def _check(
        evaluation: EvaluationResource, model_registry: ModelRegistryResource
    ) -> dg.AssetCheckResult:
        plan = evaluation.plan()
        challenger = model_registry.registry().by_alias(plan.agent, CHALLENGER)
        threshold = float(getattr(plan.gates, metric if gate != "latency" else "latency_p95_ms"))
        value = challenger.metrics.get(metric, math.nan) if challenger else math.nan
        passed = not math.isnan(value) and (
            value >= threshold if comparison == ">=" else value <= threshold
        )
        label = f"v{challenger.version}" if challenger else "no challenger"
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{label}: {metric} = {value:.4g}, must be {comparison} {threshold:g}",
            metadata={"value": value, "threshold": threshold, "version": label},
        )

    return _check


gate_checks = [_gate_check(*gate) for gate in GATES]


@dg.asset(group_name=GROUP, deps=[evaluated_model_versions], kinds={"mlflow"})
def champion_promotion(
    context: dg.AssetExecutionContext,
    evaluation: EvaluationResource,
    model_registry: ModelRegistryResource,
) -> dg.MaterializeResult:
    """Moves `champion` to the challenger when it passed every gate and beat the champion; when
    it does not, the decision and its reason are recorded (a blocked promotion is an outcome)."""
    plan = evaluation.plan()
    registry = model_registry.registry()
    challenger = registry.by_alias(plan.agent, CHALLENGER)
    before = registry.aliases(plan.agent).get(CHAMPION)
    promoted = False
    reason = "no challenger"
    if challenger is not None:
        failed = [g for g in evaluate_gates(challenger.metrics, plan.gates) if not g.passed]
        reason = "; ".join(g.shortfall for g in failed) or challenger.tags.get(
            "ab.reason", "not compared"
        )
        if not failed and challenger.tags.get("ab.promote") == "true":
            registry.promote(
                plan.agent, challenger.version, by=f"dagster:{context.run_id}", reason=reason
            )
            promoted = True
    after = registry.aliases(plan.agent).get(CHAMPION)
    decision = f"promoted v{after}: {reason}" if promoted else f"not promoted: {reason}"
    context.log.info(f"champion v{before} -> v{after}: {decision}")
    return dg.MaterializeResult(
        metadata={
            "decision": decision,
            "promoted": promoted,
            "challenger_version": challenger.version if challenger else -1,
            "champion_before": before or -1,
            "champion_after": after or -1,
            "rollback_command": dg.MetadataValue.md(
                f"`agent-platform models rollback {plan.agent} --by NAME`"
            ),
        }
    )


@dg.asset(group_name=GROUP, deps=[evaluation_dataset, champion_promotion], kinds={"mlflow"})
def champion_quality(
    context: dg.AssetExecutionContext,
    evaluation: EvaluationResource,
    model_registry: ModelRegistryResource,
) -> dg.MaterializeResult:
    """The serving champion re-evaluated on the dataset; a dropped gate fails the run (alert)."""
    service = evaluation.service(model_registry, log=context.log.info)
    result = service.evaluate_champion(dagster_run_id=context.run_id)
    if result is None:
        return dg.MaterializeResult(
            metadata={"champion": "none", "decision": "no champion to check yet"}
        )
    verdict = "passes its gates" if result.passed else "dropped below its gates"
    metadata = {
        "decision": f"champion v{result.version.version} {verdict}",
        "champion_version": result.version.version,
        "gates_passed": result.passed,
        "gates": dg.MetadataValue.md("\n".join(f"- {g.message}" for g in result.gates)),
        "mlflow_run_id": result.run_id,
        "accuracy": result.metrics["accuracy"],
        "latency_p95_ms": result.metrics["latency_p95_ms"],
    }
    if not result.passed:
        failed = "; ".join(g.message for g in result.gates if not g.passed)
        raise dg.Failure(
            description=f"champion {result.version.name} v{result.version.version} dropped below "
            f"its quality gates: {failed}",
            metadata=metadata,
        )
    return dg.MaterializeResult(metadata=metadata)


evaluation_job = dg.define_asset_job(
    "evaluation_job",
    selection=dg.AssetSelection.assets(
        evaluation_dataset, evaluated_model_versions, champion_promotion
    ),
    description="Evaluate every candidate of the plan and promote the challenger if it passes.",
)
quality_gate_job = dg.define_asset_job(
    "quality_gate_job",
    selection=dg.AssetSelection.assets(champion_quality),
    description="Re-evaluate the champion; fails with the dropped gates when it regresses.",
)
