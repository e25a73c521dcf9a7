"""The rollout controller's clock: every tick reads green's live error rate and p95 latency and
advances, finishes or rolls back the rollout, reporting each stage change as a materialization
of `agent_rollout` (the decision and the numbers it was made on are its metadata)."""

import dagster as dg

from agent_platform.delivery.controller import RolloutController
from assets.delivery import agent_rollout, rollout_metadata
from resources.model_registry import ModelRegistryResource


def build_rollout_sensor(interval_s: int) -> dg.SensorDefinition:
    """The sensor at `delivery.tick_interval_s` (the spec's 15-30 s)."""

    @dg.sensor(
        name="rollout_controller",
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def rollout_controller(
        context: dg.SensorEvaluationContext, model_registry: ModelRegistryResource
    ) -> dg.SensorResult:
        """Advances, completes or rolls back the rollouts in progress."""
        outcomes = RolloutController(model_registry.settings()).tick_all()
        events = [
            dg.AssetMaterialization(
                asset_key=agent_rollout.key, metadata=rollout_metadata(o.rollout, o)
            )
            for o in outcomes
            if o.changed
        ]
        if events:
            return dg.SensorResult(asset_events=events)
        reasons = "; ".join(f"{o.rollout.agent}: {o.decision.reason}" for o in outcomes)
        return dg.SensorResult(skip_reason=reasons or "no rollout in progress")

    return rollout_controller
