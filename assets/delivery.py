"""The rollout of an agent version as a Dagster asset: `deploy_agent_version` materializes
`agent_rollout` (preparation and the first traffic step); the rollout sensor reports each later
stage change on the same asset, so its history in the UI is the rollout's."""

import dagster as dg

from agent_platform.delivery.controller import RolloutController, TickOutcome
from agent_platform.delivery.state import Rollout, Stage
from resources.model_registry import ModelRegistryResource

GROUP = "delivery"


class DeployConfig(dg.Config):
    version: int
    agent: str = ""  # default: the serving agent
    actor: str = ""  # who asked (the CLI passes the identity it authorized); default: this run
    verified: bool = False


def rollout_metadata(rollout: Rollout, outcome: TickOutcome | None = None) -> dict:
    """What a person needs in the UI: where the rollout stands, why, and the checks."""
    checks = "\n".join(f"| {c['name']} | {c['status']} | {c['detail']} |" for c in rollout.checks)
    metadata = {
        "agent": rollout.agent,
        "rollout_id": rollout.id,
        "stage": str(rollout.stage),
        "blue": rollout.blue,
        "green": rollout.green,
        "green_traffic_percent": dg.MetadataValue.int(rollout.weight),
        "reason": rollout.reason or "-",
        "checks": dg.MetadataValue.md(f"| check | status | detail |\n|---|---|---|\n{checks}"),
    }
    if outcome is not None:
        metadata["decision"] = f"{outcome.decision.action}: {outcome.decision.reason}"
        if outcome.health is not None:
            metadata["green_requests"] = dg.MetadataValue.int(int(outcome.health.requests))
            metadata["green_error_rate"] = dg.MetadataValue.float(outcome.health.error_rate)
            if outcome.health.p95_ms is not None:
                metadata["green_p95_ms"] = dg.MetadataValue.float(outcome.health.p95_ms)
    return metadata


@dg.asset(group_name=GROUP, kinds={"mlflow", "sqlite"})
def agent_rollout(
    context: dg.AssetExecutionContext, config: DeployConfig, model_registry: ModelRegistryResource
) -> dg.MaterializeResult:
    """Blue/green rollout of an agent version: preparation checks, then green beside blue at the
    first traffic step. Fails (nothing shifted) when preparation refuses the version."""
    controller = RolloutController(model_registry.settings())
    actor = {
        "subject": config.actor or f"dagster-run:{context.run_id}",
        "verified": config.verified,
    }
    rollout = controller.deploy(config.version, actor=actor, agent=config.agent or None)
    metadata = rollout_metadata(rollout)
    if rollout.stage is Stage.REFUSED:
        raise dg.Failure(description=f"rollout refused: {rollout.reason}", metadata=metadata)
    context.log.info(rollout.summary())
    return dg.MaterializeResult(metadata=metadata)


deploy_agent_version = dg.define_asset_job(
    "deploy_agent_version",
    selection=[agent_rollout],
    description="Deploy an agent version blue/green: preparation, then the first traffic step; "
    "the rollout sensor advances or rolls it back.",
)
