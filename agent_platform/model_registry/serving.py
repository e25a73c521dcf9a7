"""Read-side helpers for serving processes and the CLI: the champion's config, JSON views."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.exceptions import MlflowException

from agent_platform.model_registry.registry import AgentModelRegistry, AgentVersion
from agent_platform.runtime.agent_config import AgentConfig

if TYPE_CHECKING:
    from agent_platform.settings import Settings


def champion_version(settings: Settings, agent: str) -> AgentVersion | None:
    """The version `agent` serves (its config and LoggedModel), or None before any promotion."""
    uri = settings.resolved_mlflow_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None  # no local store yet: nothing was ever registered, and none is created here
    registry = AgentModelRegistry.from_settings(settings)
    try:
        return registry.champion(agent)
    except MlflowException:
        return None


def champion_config(settings: Settings, agent: str) -> AgentConfig | None:
    """The serving configuration of `agent`, or None before anything was promoted."""
    champion = champion_version(settings, agent)
    return champion.config() if champion else None


def evaluated_model_quality(settings: Settings, agent: str) -> dict[str, float]:
    """Accuracy per model from the newest evaluated version that ran that model alone, for the
    router's quality-aware strategies ({} when nothing was evaluated)."""
    uri = settings.resolved_mlflow_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return {}
    try:
        versions = AgentModelRegistry.from_settings(settings).versions(agent)
    except MlflowException:
        return {}
    quality: dict[str, float] = {}
    for version in versions:  # oldest first: a newer evaluation of the same model wins
        models = version.config().models or []
        accuracy = version.metrics.get("accuracy")
        if version.evaluated and len(models) == 1 and accuracy is not None:
            quality[models[0]] = accuracy
    return quality


def as_json(version: AgentVersion) -> dict[str, Any]:
    return {
        "name": version.name,
        "version": version.version,
        "aliases": version.aliases,
        "candidate": version.candidate,
        "evaluated": version.evaluated,
        "gates_passed": version.gates_passed,
        "metrics": version.metrics,
        "lineage": {
            k: v
            for k, v in version.lineage.items()
            if k.startswith(("prompt.", "index", "embedding", "dataset", "dagster", "code", "git"))
        },
        "created_at": version.created_at.isoformat(timespec="seconds"),
        "run_id": version.tags.get("eval.run_id", ""),
        "model_id": version.model_id,
        "config": version.config().model_dump(mode="json") if version.lineage else {},
    }
