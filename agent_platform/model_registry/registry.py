"""Agent model versions in the MLflow model registry: register, evaluate, promote, roll back.

A version is an MLflow 3 `LoggedModel` (an external model of type "agent" in the agent's
experiment) whose parameters are the `AgentConfig` and its lineage (models, retrieval, prompt
versions, index snapshot, embedding model, dataset, Dagster run, git commit), registered as a
model version linked to it, so the `champion` and `challenger` aliases work as before. The model
version carries only the tags a person filters on (`LINEAGE_TAGS`) and the evaluation verdict
that promotion reads. The same code runs against the embedded SQLite store and a tracking server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException

from agent_platform.model_registry.audit import AliasEvent, new_event, parse_events
from agent_platform.model_registry.errors import (
    PromotionRefusedError,
    UnknownAgentError,
    UnknownVersionError,
)
from agent_platform.model_registry.store import ensure_store, using_tracking_uri
from agent_platform.runtime.agent_config import AgentConfig

if TYPE_CHECKING:
    from agent_platform.settings import Settings

CHAMPION, CHALLENGER = "champion", "challenger"
EXPERIMENT_PREFIX = "agent-platform/agents/"
CONFIG_PARAM = "agent_config"
# the lineage a person filters model versions on; the rest is on the LoggedModel's parameters
LINEAGE_TAGS = ("candidate", "tenant", "git_commit", "index_snapshot_id", "version_key")
# MLflow 3 shows the GenAI tabs (Traces, Evaluations, Agent versions) for experiments of this kind
EXPERIMENT_KIND = {"mlflow.experimentKind": "genai_development"}
_EXTERNAL = {"mlflow.model.isExternal": "true"}
MODEL_URI_PREFIX, MODEL_VERSIONS_TAG = "models:/", "mlflow.modelVersions"


@dataclass(frozen=True)
class AgentVersion:
    """One registered version, as read back from MLflow."""

    name: str
    version: int
    run_id: str
    source: str
    created_at: datetime
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    model_id: str = ""
    lineage: dict[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def evaluated(self) -> bool:
        return bool(self.tags.get("eval.run_id"))

    @property
    def gates_passed(self) -> bool | None:
        value = self.tags.get("eval.gates_passed")
        return None if value is None else value == "true"

    @property
    def metrics(self) -> dict[str, float]:
        """The metrics of the version's own evaluation (what the gates and promotion read)."""
        if "eval.metrics" not in self.tags:  # registered before LoggedModels: one tag per metric
            old = {k.removeprefix("eval.metric."): v for k, v in self.tags.items()}
            return {k: float(v) for k, v in old.items() if f"eval.metric.{k}" in self.tags}
        return {k: float(v) for k, v in json.loads(self.tags["eval.metrics"]).items()}

    @property
    def candidate(self) -> str:
        return self.tags.get("candidate", "")

    def config(self) -> AgentConfig:
        if CONFIG_PARAM not in self.lineage:  # registered before LoggedModels
            return AgentConfig.model_validate_json(self.tags["agent_config"])
        config = json.loads(self.lineage[CONFIG_PARAM])
        return AgentConfig.model_validate({**config, "description": self.description})


def _missing(exc: MlflowException) -> bool:
    return exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"}


class AgentModelRegistry:
    """One `MlflowClient` over the tracking store and model registry."""

    def __init__(self, tracking_uri: str, artifact_root: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        ensure_store(tracking_uri, artifact_root)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    @classmethod
    def from_settings(cls, settings: Settings) -> AgentModelRegistry:
        return cls(settings.resolved_mlflow_tracking_uri, settings.resolved_mlflow_artifact_root)

    def experiment_id(self, agent: str) -> str:
        """The experiment holding the agent's versions, evaluations and traces (created once)."""
        return self._experiment(f"{EXPERIMENT_PREFIX}{agent}", f"agents/{agent}", EXPERIMENT_KIND)

    def reports_experiment_id(self, agent: str) -> str:
        """Where readiness reports go: apart from the agent's experiment, whose Evaluations tab
        lists evaluations only."""
        return self._experiment(f"agent-platform/readiness/{agent}", f"readiness/{agent}", {})

    def _experiment(self, name: str, folder: str, tags: dict[str, str]) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = f"{self.artifact_root.rstrip('/')}/{folder}" if self.artifact_root else None
        try:
            return self.client.create_experiment(name, artifact_location=location, tags=tags)
        except MlflowException:  # created concurrently
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    # -- reading ------------------------------------------------------------------------------
    def _to_version(self, mv: Any) -> AgentVersion:
        source = mv.source or ""
        model_id = source.removeprefix(MODEL_URI_PREFIX) if source.startswith("models:/m-") else ""
        lineage = dict(self.client.get_logged_model(model_id).params) if model_id else {}
        return AgentVersion(
            name=mv.name,
            version=int(mv.version),
            run_id=mv.run_id or "",
            source=mv.source or "",
            created_at=datetime.fromtimestamp((mv.creation_timestamp or 0) / 1000, tz=UTC),
            tags=dict(mv.tags or {}),
            aliases=sorted(mv.aliases or []),
            model_id=model_id,
            lineage=lineage,
            description=mv.description or "",
        )

    def names(self) -> list[str]:
        return sorted(m.name for m in self.client.search_registered_models(max_results=1000))

    def _model(self, name: str) -> Any:
        try:
            return self.client.get_registered_model(name)
        except MlflowException as exc:
            if _missing(exc):
                raise UnknownAgentError(
                    f"no registered agent named {name!r} (known: {self.names()})"
                ) from exc
            raise

    def versions(self, name: str) -> list[AgentVersion]:
        """Every version, oldest first ([] for an agent never registered)."""
        try:
            found = self.client.search_model_versions(f"name = '{name}'", max_results=10_000)
        except MlflowException as exc:
            if _missing(exc):
                return []
            raise
        aliases = self.aliases(name) if found else {}
        by_version: dict[int, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(version, []).append(alias)
        versions = [self._to_version(mv) for mv in found]
        return sorted(
            (
                AgentVersion(**{**v.__dict__, "aliases": sorted(by_version.get(v.version, []))})
                for v in versions
            ),
            key=lambda v: v.version,
        )

    def aliases(self, name: str) -> dict[str, int]:
        model = self._model(name)
        return {alias: int(version) for alias, version in (model.aliases or {}).items()}

    def get(self, name: str, version: int | str) -> AgentVersion:
        """A version by number or alias; the error lists what exists."""
        ref = str(version)
        if not ref.isdigit():
            return self.by_alias(name, ref, required=True)  # type: ignore[return-value]
        self._model(name)
        try:
            mv = self.client.get_model_version(name, ref)
        except MlflowException as exc:
            if _missing(exc):
                known = [v.version for v in self.versions(name)]
                raise UnknownVersionError(
                    f"agent {name!r} has no version {ref} (versions: {known})"
                ) from exc
            raise
        aliases = [a for a, v in self.aliases(name).items() if v == int(ref)]
        return AgentVersion(**{**self._to_version(mv).__dict__, "aliases": sorted(aliases)})

    def by_alias(self, name: str, alias: str, *, required: bool = False) -> AgentVersion | None:
        version = self.aliases(name).get(alias)
        if version is None:
            if required:
                raise UnknownVersionError(f"agent {name!r} has no alias {alias!r}")
            return None
        return self.get(name, version)

    def champion(self, name: str) -> AgentVersion | None:
        try:
            return self.by_alias(name, CHAMPION)
        except UnknownAgentError:
            return None

    def history(self, name: str) -> list[AliasEvent]:
        return parse_events(dict(self._model(name).tags or {}))

    # -- writing ------------------------------------------------------------------------------
    def register(self, config: AgentConfig, lineage: dict[str, str]) -> tuple[AgentVersion, bool]:
        """Register `config` with its lineage as a LoggedModel and a model version linked to it;
        an identical (config, lineage key) is reused. Returns the version and whether it is new."""
        key = lineage.get("version_key") or config.fingerprint()
        try:
            self.client.create_registered_model(
                config.name,
                description=f"Agent {config.name}: one model version per evaluated candidate "
                "configuration; `champion` serves, `challenger` is the best of the last round.",
            )
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        for existing in self.versions(config.name):
            if existing.tags.get("version_key") == key:
                return existing, False
        params = {**lineage, **config_params(config), "version_key": key}
        experiment_id = self.experiment_id(config.name)
        candidate = lineage.get("candidate") or "agent"
        model = self.client.create_logged_model(
            experiment_id,
            name=f"{config.name}-{candidate}",
            params={k: str(v)[:6000] for k, v in params.items()},
            tags={
                **_EXTERNAL,
                **{t: params[t] for t in LINEAGE_TAGS if params.get(t)},
                "mlflow.note.content": _describe(config, candidate),
            },
            model_type="agent",
        )
        self.client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        tags = {t: str(params[t]) for t in LINEAGE_TAGS if params.get(t)}
        with using_tracking_uri(self.tracking_uri):  # the registry resolves model ids globally
            mv = self.client.create_model_version(
                config.name,
                f"{MODEL_URI_PREFIX}{model.model_id}",
                tags=tags,
                description=config.description or None,
                model_id=model.model_id,
            )
        # what `mlflow.register_model` records: the Agent versions view lists it
        versions = [{"name": config.name, "version": str(mv.version)}]
        self.client.set_logged_model_tags(
            model.model_id, {MODEL_VERSIONS_TAG: json.dumps(versions)}
        )
        return self.get(config.name, int(mv.version)), True

    def record_evaluation(
        self,
        name: str,
        version: int,
        *,
        run_id: str,
        metrics: dict[str, float],
        gates_passed: bool,
        dataset_version: str,
        failed_gates: list[str] | None = None,
    ) -> AgentVersion:
        """Attach an evaluation's results to the version (what promotion reads); `failed_gates`
        (`accuracy 0.5 < 0.95`) is what a refused promotion shows as its reason."""
        self.get(name, version)
        tags = {
            "eval.run_id": run_id,
            "eval.gates_passed": "true" if gates_passed else "false",
            "eval.dataset_version": dataset_version,
            "eval.at": datetime.now(UTC).isoformat(timespec="seconds"),
            "eval.metrics": json.dumps({k: float(v) for k, v in metrics.items()}, sort_keys=True),
            "eval.failed_gates": "; ".join(failed_gates or []),
        }
        for key, value in tags.items():
            self.client.set_model_version_tag(name, str(version), key, value)
        return self.get(name, version)

    def record_quality_check(self, name: str, version: int, *, passed: bool, run_id: str) -> None:
        """Mark the daily re-evaluation of a serving version (the readiness alert item reads it)."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for key, value in (
            ("quality.checked_at", now),
            ("quality.passed", "true" if passed else "false"),
            ("quality.run_id", run_id),
        ):
            self.client.set_model_version_tag(name, str(version), key, value)

    def _move(
        self, name: str, alias: str, version: int, *, action: str, by: str, reason: str
    ) -> AliasEvent:
        previous = self.aliases(name).get(alias)
        self.client.set_registered_model_alias(name, alias, str(version))
        key, value, event = new_event(
            self.history(name),
            action=action,
            alias=alias,
            from_version=previous,
            to_version=version,
            by=by,
            reason=reason,
        )
        self.client.set_registered_model_tag(name, key, value)
        if alias == CHAMPION:
            for tag, tag_value in (
                ("promoted_by", by),
                ("promoted_at", event.at),
                ("promotion", action),
            ):
                self.client.set_model_version_tag(name, str(version), tag, tag_value)
        return event

    def set_challenger(self, name: str, version: int, *, by: str, reason: str = "") -> AliasEvent:
        self.get(name, version)
        return self._move(name, CHALLENGER, version, action="challenger", by=by, reason=reason)

    def promote(self, name: str, version: int | str, *, by: str, reason: str = "") -> AliasEvent:
        """Move `champion` to a version that was evaluated and passed every gate."""
        target = self.get(name, version)
        if not target.evaluated:
            raise PromotionRefusedError(
                f"agent {name!r} v{target.version} has no evaluation; evaluate it first "
                "(materialize evaluated_model_versions or `agent-platform models evaluate`)"
            )
        if target.gates_passed is not True:
            failed = target.tags.get("eval.failed_gates")
            raise PromotionRefusedError(
                f"agent {name!r} v{target.version} failed its quality gates"
                + (f" ({failed})" if failed else "")
                + f" (evaluation run {target.tags.get('eval.run_id')}); champion unchanged "
                f"({self.aliases(name).get(CHAMPION, 'none')})"
            )
        return self._move(name, CHAMPION, target.version, action="promote", by=by, reason=reason)

    def rollback(
        self, name: str, *, by: str, to: int | None = None, reason: str = ""
    ) -> AliasEvent:
        """Move `champion` back: to the version it replaced, or to `to` if that version served."""
        current = self.aliases(name).get(CHAMPION)
        served = [e for e in self.history(name) if e.alias == CHAMPION and e.to_version]
        if to is None:
            last = next((e for e in reversed(served) if e.to_version == current), None)
            if last is None or last.from_version is None:
                raise PromotionRefusedError(f"agent {name!r}: no earlier champion to roll back to")
            to = last.from_version
        target = self.get(name, to)
        if target.version not in {e.to_version for e in served}:
            raise PromotionRefusedError(
                f"agent {name!r} v{target.version} never served as champion; promote it instead"
            )
        if target.version == current:
            raise PromotionRefusedError(f"agent {name!r} v{target.version} is already the champion")
        return self._move(name, CHAMPION, target.version, action="rollback", by=by, reason=reason)

    def load_config(self, name: str, ref: int | str = CHAMPION) -> AgentConfig:
        """The `AgentConfig` of a version or alias (the runtime serves `champion`)."""
        return self.get(name, ref).config()


def _describe(config: AgentConfig, candidate: str) -> str:
    """The LoggedModel's description: which candidate, what it runs, and its own description."""
    models = ", ".join(config.models or []) or f"route {config.route}"
    retrieval = f"{config.retrieval.mode} retrieval, k={config.retrieval.k}"
    return f"Candidate `{candidate}` of {config.name}: {models}; {retrieval}. {config.description}"


def config_params(config: AgentConfig) -> dict[str, str]:
    """The configuration as LoggedModel parameters: readable fields, and the whole of it (less
    the description, which is the model version's) as `agent_config`."""
    return {
        "models": ",".join(config.models or []) or f"route:{config.route}",
        "strategy": config.strategy or "route default",
        "retrieval.k": str(config.retrieval.k),
        "retrieval.mode": config.retrieval.mode,
        "retrieval.min_relevance": str(config.retrieval.min_relevance),
        "max_output_tokens": str(config.max_output_tokens),
        CONFIG_PARAM: config.model_dump_json(exclude={"description"}),
    }
