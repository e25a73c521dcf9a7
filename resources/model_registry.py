"""The MLflow agent model registry and the evaluation plan, as Dagster resources.

`LocalModelRegistryResource` keeps MLflow in SQLite under AGENT_PLATFORM_HOME;
`MlflowServerModelRegistryResource` points at a tracking server backed by PostgreSQL with S3-style
artifacts. Assets type-hint the base; the composition root picks one from settings.
"""

from collections.abc import Callable
from pathlib import Path

import dagster as dg

from agent_platform.evaluation import EvaluationPlan, EvaluationService, GateThresholds, load_plan
from agent_platform.evaluation.candidates import DEFAULT_PLAN_PATH
from agent_platform.model_registry import AgentModelRegistry, watched_state
from agent_platform.settings import Settings


class ModelRegistryResource(dg.ConfigurableResource):
    """Where agent model versions, evaluation runs and readiness reports are recorded."""

    home: str

    def tracking_uri(self) -> str:
        raise NotImplementedError

    def artifact_root(self) -> str:
        raise NotImplementedError

    def settings(self) -> Settings:
        """Platform settings (from the environment) pointed at this registry's MLflow."""
        return Settings(
            home=Path(self.home),
            mlflow_tracking_uri=self.tracking_uri(),
            mlflow_artifact_root=self.artifact_root(),
        )

    def registry(self) -> AgentModelRegistry:
        return AgentModelRegistry(self.tracking_uri(), self.artifact_root())


class LocalModelRegistryResource(ModelRegistryResource):
    """The embedded default: `<home>/mlflow/mlflow.db` and local artifacts."""

    def tracking_uri(self) -> str:
        return Settings(home=Path(self.home)).resolved_mlflow_tracking_uri

    def artifact_root(self) -> str:
        return Settings(home=Path(self.home)).resolved_mlflow_artifact_root


class MlflowServerModelRegistryResource(ModelRegistryResource):
    """Production: an MLflow tracking server (PostgreSQL backend store, S3 artifacts)."""

    server_uri: str
    artifacts_uri: str

    def tracking_uri(self) -> str:
        return self.server_uri

    def artifact_root(self) -> str:
        return self.artifacts_uri


class EvaluationResource(dg.ConfigurableResource):
    """The evaluation plan (`evaluation/agents.toml`) and optional gate threshold overrides."""

    plan_path: str = str(DEFAULT_PLAN_PATH)
    accuracy_gate: float | None = None
    consistency_gate: float | None = None
    compliance_gate: float | None = None
    latency_p95_budget_ms: float | None = None

    def plan(self) -> EvaluationPlan:
        plan = load_plan(Path(self.plan_path))
        overrides = {
            "accuracy": self.accuracy_gate,
            "consistency": self.consistency_gate,
            "compliance": self.compliance_gate,
            "latency_p95_ms": self.latency_p95_budget_ms,
        }
        chosen = {k: v for k, v in overrides.items() if v is not None}
        if chosen:
            plan.gates = GateThresholds(**{**plan.gates.model_dump(), **chosen})
        return plan

    def service(
        self, registry: ModelRegistryResource, log: Callable[[str], None] = print
    ) -> EvaluationService:
        return EvaluationService(
            registry.settings(), plan=self.plan(), registry=registry.registry(), log=log
        )

    def watched_state(
        self, registry: ModelRegistryResource, candidates: list[str] | None = None
    ) -> dict[str, dict[str, str]]:
        """What an evaluation depends on, per candidate (prompt versions, index snapshot, config)
        plus the plan's hash when all candidates are evaluated: the evaluation sensor's cursor,
        and recorded by each evaluation as the baseline of a sensor that has no cursor yet."""
        plan = self.plan()
        settings = registry.settings()
        state = {
            candidate.key: watched_state(settings, candidate.config, plan.tenant)
            for candidate in plan.select(candidates)
        }
        if not candidates:
            state["plan"] = {"content_hash": plan.content_hash}
        return state
