"""One evaluation round: register each candidate, run it through the real runtime, score it, log
everything to MLflow, apply the gates, pick the challenger and compare it with the champion.

The Dagster assets and the CLI call this; they add no logic of their own.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from agent_platform.evaluation.candidates import Candidate, EvaluationPlan, load_plan
from agent_platform.evaluation.compare import Comparison, paired_bootstrap
from agent_platform.evaluation.dataset import EvaluationDataset, Example, load_dataset
from agent_platform.evaluation.gates import GateResult, all_passed, evaluate_gates
from agent_platform.evaluation.genai import log_genai_evaluation
from agent_platform.evaluation.runner import AgentRunner, EvaluationResult, evaluate
from agent_platform.model_registry import (
    AgentModelRegistry,
    AgentVersion,
    build_lineage,
    pin_prompt_versions,
)
from agent_platform.runtime.agent_config import AgentConfig
from agent_platform.settings import Settings

EXAMPLES_ARTIFACT = "eval/examples.json"
RuntimeFactory = Callable[[Settings, AgentConfig], Any]
Log = Callable[[str], None]
# evaluation: a version's own full run, the only kind whose verdict promotion reads; comparison:
# the champion on a challenger's examples; quality_check: the daily re-evaluation of the champion
RunKind = Literal["evaluation", "comparison", "quality_check"]
# the lineage an evaluation run is tagged with (the rest is on the version's LoggedModel)
RUN_TAGS = frozenset(
    {"candidate", "tenant", "dataset_version", "dagster_run_id", "index_snapshot_id", "git_commit"}
)
STANDARD_LINEAGE = frozenset(
    {"embedding_model", "code_version", "prompts", "version_key", "config_fingerprint"}
)
RUN_VERBS: dict[RunKind, str] = {
    "evaluation": "evaluate",
    "comparison": "compare",
    "quality_check": "quality check",
}


def default_runtime_factory(settings: Settings, config: AgentConfig) -> Any:
    """The real runtime; evaluation traffic is exempt from per-user rate limits (it is one user
    asking hundreds of questions a minute, which is not what the limits are for)."""
    from agent_platform.runtime.agent import AgentRuntime
    from agent_platform.runtime.config import RuntimeSettings

    runtime = RuntimeSettings()
    unlimited = 1_000_000_000
    limits = runtime.rate_limits.model_copy(
        update={
            "user_requests_per_minute": unlimited,
            "user_tokens_per_minute": unlimited,
            "global_requests_per_minute": unlimited,
            "global_tokens_per_minute": unlimited,
            "model_requests_per_minute": unlimited,
            "model_tokens_per_minute": unlimited,
        }
    )
    runtime = runtime.model_copy(update={"rate_limits": limits})
    return AgentRuntime.from_settings(settings, agent=config, runtime_settings=runtime)


@dataclass
class CandidateEvaluation:
    candidate: str
    version: AgentVersion
    created: bool
    result: EvaluationResult
    gates: list[GateResult]
    run_id: str

    @property
    def passed(self) -> bool:
        return all_passed(self.gates)

    @property
    def metrics(self) -> dict[str, float]:
        return self.result.metrics


@dataclass
class EvaluationRound:
    dataset: EvaluationDataset
    evaluations: list[CandidateEvaluation]
    challenger: CandidateEvaluation | None = None
    champion: CandidateEvaluation | None = None
    comparisons: list[Comparison] = field(default_factory=list)

    def should_promote(self) -> tuple[bool, str]:
        """Promote a challenger that passes every gate and beats (or replaces) the champion."""
        challenger = self.challenger
        if challenger is None:
            return False, "no candidate was evaluated"
        if not challenger.passed:
            failed = "; ".join(g.message for g in challenger.gates if not g.passed)
            return False, f"v{challenger.version.version} failed its gates: {failed}"
        if self.champion is None:
            return True, "no champion yet"
        champion = self.champion.version
        if champion.version == challenger.version.version:
            return False, f"v{challenger.version.version} is already the champion"
        # the champion's own recorded verdict, never that of a comparison run on a subset
        if champion.gates_passed is not True:
            return True, (
                f"champion v{champion.version} no longer passes its gates "
                f"(evaluation run {champion.tags.get('eval.run_id')})"
            )
        accuracy = next((c for c in self.comparisons if c.metric == "correct"), None)
        if accuracy is not None and accuracy.verdict == "better":
            return True, accuracy.summary()
        return False, accuracy.summary() if accuracy else "no comparison"


class EvaluationService:
    """Evaluates candidates of an `EvaluationPlan` against the MLflow registry."""

    def __init__(
        self,
        settings: Settings,
        *,
        plan: EvaluationPlan | None = None,
        registry: AgentModelRegistry | None = None,
        runtime_factory: RuntimeFactory = default_runtime_factory,
        log: Log = lambda message: None,
    ) -> None:
        self.settings = settings
        self.plan = plan or load_plan()
        self.registry = registry or AgentModelRegistry.from_settings(settings)
        self.runtime_factory = runtime_factory
        self.log = log

    def dataset(self) -> EvaluationDataset:
        return load_dataset(self.plan.dataset_path).require_valid()

    def evaluate_config(
        self,
        key: str,
        config: AgentConfig,
        examples: list[Example],
        *,
        dataset_version: str,
        repeats: int,
        dagster_run_id: str = "",
    ) -> CandidateEvaluation:
        """Register (or reuse) the version, evaluate it, log the run and record the verdict."""
        config = pin_prompt_versions(self.settings, config)
        lineage = build_lineage(
            self.settings,
            config,
            tenant=self.plan.tenant,
            candidate=key,
            dataset_version=dataset_version,
            dagster_run_id=dagster_run_id,
        )
        version, created = self.registry.register(config, lineage)
        self.log(
            f"{key}: {'registered' if created else 'reusing'} {config.name} v{version.version}"
        )
        return self._evaluate_version(
            key,
            version,
            examples,
            lineage=lineage,
            dataset_version=dataset_version,
            repeats=repeats,
            created=created,
        )

    def _evaluate_version(
        self,
        key: str,
        version: AgentVersion,
        examples: list[Example],
        *,
        lineage: dict[str, str],
        dataset_version: str,
        repeats: int,
        created: bool = False,
        kind: RunKind = "evaluation",
    ) -> CandidateEvaluation:
        """Evaluate a registered version and log the run of `kind`; only an "evaluation" attaches
        its verdict to the version (what promotion reads)."""
        config = version.config()
        runtime: AgentRunner = self.runtime_factory(self.settings, config)
        try:
            result = evaluate(
                runtime,
                examples,
                agent=config.name,
                tenant=self.plan.tenant,
                k=config.retrieval.k,
                repeats=repeats,
                progress=lambda done, total: (
                    self.log(f"{key}: {done}/{total} examples") if done % 10 == 0 else None
                ),
            )
        finally:
            close = getattr(runtime, "close", None)
            if close:
                close()
        self.log(f"{key}: warm-up request {result.warmup_ms:.0f} ms (not scored)")
        gates = evaluate_gates(result.metrics, self.plan.gates)
        run_id = self._log_run(
            key, version, result, gates, lineage, repeats, kind=kind, examples=examples
        )
        if kind == "evaluation":
            version = self.registry.record_evaluation(
                config.name,
                version.version,
                run_id=run_id,
                metrics={k: v for k, v in result.metrics.items() if not math.isnan(v)},
                gates_passed=all_passed(gates),
                dataset_version=dataset_version,
                failed_gates=[g.shortfall for g in gates if not g.passed],
            )
        return CandidateEvaluation(key, version, created, result, gates, run_id)

    def _log_run(
        self,
        key: str,
        version: AgentVersion,
        result: EvaluationResult,
        gates: list[GateResult],
        lineage: dict[str, str],
        repeats: int,
        *,
        kind: RunKind = "evaluation",
        examples: list[Example] | None = None,
    ) -> str:
        """One MLflow GenAI evaluation run of the version's LoggedModel: the dataset as its input,
        one trace with the scorers' assessments per example, and the platform's metrics and gate
        outcomes linked to the model and the dataset."""
        client = self.registry.client
        verb = RUN_VERBS[kind]
        tags = {
            k: v
            for k, v in lineage.items()
            if k in RUN_TAGS or not (k in STANDARD_LINEAGE or k.startswith("prompt."))
        }
        run = client.create_run(
            self.registry.experiment_id(version.name),
            run_name=f"{verb} {key} v{version.version}",
            tags={**tags, "kind": kind, "model_version": str(version.version)},
        )
        run_id: str = run.info.run_id
        config = version.config()
        params = {
            "candidate": key,
            "model_version": version.version,
            "models": ",".join(config.models or [config.route]),
            "retrieval_k": config.retrieval.k,
            "retrieval_mode": config.retrieval.mode,
            "examples": len(result.examples),
            "repeats": repeats,
        }
        for name, value in params.items():
            client.log_param(run_id, name, str(value))
        dataset = self.dataset()
        log_genai_evaluation(
            self.registry.tracking_uri,
            run_id,
            version.model_id,
            dataset,
            examples if examples is not None else dataset.examples,
            result.examples,
        )
        numbers = {k: v for k, v in result.metrics.items() if not math.isnan(v)}
        numbers |= {f"gate.{g.name}": float(g.passed) for g in gates}
        numbers["gates_passed"] = float(all_passed(gates))
        for name, value in numbers.items():
            client.log_metric(
                run_id,
                name,
                value,
                model_id=version.model_id or None,
                dataset_name=dataset.name,
                dataset_digest=dataset.version[:36],
            )
        rows = [e.row() for e in result.examples]
        client.log_table(run_id, pd.DataFrame(rows), EXAMPLES_ARTIFACT)
        client.log_dict(
            run_id,
            {
                "metrics": result.metrics,
                "gates": [g.__dict__ | {"message": g.message} for g in gates],
                "latencies_ms": result.latencies_ms,
                "duration_s": result.duration_s,
            },
            "eval/summary.json",
        )
        client.set_terminated(run_id)
        return run_id

    def examples_of(self, run_id: str) -> pd.DataFrame:
        """The per-example table an evaluation run logged."""
        with tempfile.TemporaryDirectory() as tmp:
            path = self.registry.client.download_artifacts(run_id, EXAMPLES_ARTIFACT, tmp)
            return pd.read_json(Path(path), orient="split")

    def run_round(
        self,
        keys: list[str] | None = None,
        *,
        max_examples: int | None = None,
        dagster_run_id: str = "",
        by: str = "evaluation",
    ) -> EvaluationRound:
        """Evaluate candidates, mark the best as `challenger`, compare it with the champion."""
        dataset = self.dataset()
        evaluations = []
        for candidate in self.plan.select(keys):
            limit = _limit(candidate, max_examples)
            evaluations.append(
                self.evaluate_config(
                    candidate.key,
                    candidate.config,
                    dataset.subset(limit),
                    dataset_version=dataset.version,
                    repeats=candidate.repeats,
                    dagster_run_id=dagster_run_id,
                )
            )
        outcome = EvaluationRound(dataset, evaluations)
        outcome.challenger = max(evaluations, key=_rank) if evaluations else None
        if outcome.challenger is None:
            return outcome
        challenger = outcome.challenger
        self.registry.set_challenger(
            self.plan.agent, challenger.version.version, by=by, reason="best of evaluation round"
        )
        champion = self.registry.champion(self.plan.agent)
        if champion is not None:
            same = [e for e in evaluations if e.version.version == champion.version]
            if same and len(same[0].result.examples) >= len(challenger.result.examples):
                outcome.champion = same[0]
            else:  # run the champion on exactly the challenger's examples, unrecorded
                ids = {e.example_id for e in challenger.result.examples}
                outcome.champion = self._rerun_champion(
                    champion,
                    [e for e in dataset.examples if e.id in ids],
                    dataset_version=dataset.version,
                    dagster_run_id=dagster_run_id,
                    kind="comparison",
                    # the comparison reads answers only: consistency repeats would be wasted
                    repeats=0,
                    compared_with=str(challenger.version.version),
                )
            for metric in ("correct", "groundedness"):
                outcome.comparisons.append(
                    paired_bootstrap(
                        challenger.result.scores(metric),
                        outcome.champion.result.scores(metric),
                        metric=metric,
                    )
                )
        return outcome

    def evaluate_champion(self, *, dagster_run_id: str = "") -> CandidateEvaluation | None:
        """Re-evaluate the serving version on the whole dataset (the daily quality gate)."""
        champion = self.registry.champion(self.plan.agent)
        if champion is None:
            return None
        dataset = self.dataset()
        candidate = self.plan.candidates.get(champion.candidate)
        limit = _limit(candidate, None) if candidate else None
        evaluation = self._rerun_champion(
            champion,
            dataset.subset(limit),
            dataset_version=dataset.version,
            dagster_run_id=dagster_run_id,
            kind="quality_check",
            repeats=candidate.repeats if candidate else 1,
            quality_check_of=str(champion.version),
        )
        self.registry.record_quality_check(
            champion.name, champion.version, passed=evaluation.passed, run_id=evaluation.run_id
        )
        return evaluation

    def _rerun_champion(
        self,
        champion: AgentVersion,
        examples: list[Example],
        *,
        dataset_version: str,
        dagster_run_id: str,
        kind: RunKind,
        repeats: int,
        **tags: str,
    ) -> CandidateEvaluation:
        """The champion version itself, as registered (re-registering its config would make a new
        version whenever the index snapshot moved), in a run that never replaces its verdict."""
        key = champion.candidate or "champion"
        lineage = build_lineage(
            self.settings,
            champion.config(),
            tenant=self.plan.tenant,
            candidate=key,
            dataset_version=dataset_version,
            dagster_run_id=dagster_run_id,
        )
        return self._evaluate_version(
            key,
            champion,
            examples,
            lineage=lineage | tags,
            dataset_version=dataset_version,
            repeats=repeats,
            kind=kind,
        )


def _limit(candidate: Candidate | None, override: int | None) -> int | None:
    limits = [n for n in (override, candidate.max_examples if candidate else None) if n]
    return min(limits) if limits else None


def _rank(evaluation: CandidateEvaluation) -> tuple[float, ...]:
    metrics = evaluation.metrics
    latency = metrics.get("latency_p95_ms", math.inf)
    return (
        float(evaluation.passed),
        metrics.get("accuracy", 0.0),
        metrics.get("consistency", 0.0) if not math.isnan(metrics.get("consistency", 0.0)) else 0,
        -latency if not math.isnan(latency) else -math.inf,
    )
