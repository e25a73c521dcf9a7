"""The controller's verdict on one tick: roll back, advance, finish or hold. Pure (no I/O), so
the thresholds are tested without a gateway and the sensor only applies what this returns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent_platform.delivery.health import VersionHealth
from agent_platform.delivery.state import Rollout, Stage
from agent_platform.settings import DeliverySettings


class Action(StrEnum):
    HOLD = "hold"
    ADVANCE = "advance"  # to the next traffic step
    COMPLETE = "complete"  # green held 100% through verification
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


def unhealthy(health: VersionHealth, config: DeliverySettings) -> str | None:
    """Why green must go back, or None. The error rate needs `min_requests` requests, unless the
    errors already exceed the limit at that many (so a burst of failures rolls back at once); the
    p95 needs `min_requests`."""
    enough = health.requests >= config.min_requests
    if health.errors > config.max_error_rate * config.min_requests and not enough:
        return (
            f"error rate: {int(health.errors)} errors in {int(health.requests)} requests, over "
            f"{config.max_error_rate:.2%} of the {config.min_requests} needed for a verdict"
        )
    if enough and health.error_rate > config.max_error_rate:
        return (
            f"error rate {health.error_rate:.2%} over {config.max_error_rate:.2%} "
            f"({int(health.errors)}/{int(health.requests)} in the window)"
        )
    if enough and health.p95_ms is not None and health.p95_ms > config.max_p95_latency_ms:
        return f"p95 latency {health.p95_ms:.0f} ms over {config.max_p95_latency_ms:.0f} ms"
    return None


def decide(
    rollout: Rollout, health: VersionHealth, config: DeliverySettings, now: float
) -> Decision:
    if not rollout.active:
        return Decision(Action.HOLD, f"rollout is {rollout.stage}")
    why = unhealthy(health, config)
    if why is not None:
        return Decision(Action.ROLLBACK, why)
    held = now - rollout.step_started_at
    if held < config.step_hold_s:
        hold = f"step {rollout.weight}% held {held:.0f}/{config.step_hold_s:.0f} s"
        return Decision(Action.HOLD, hold)
    if health.requests < config.min_requests:
        return Decision(
            Action.HOLD,
            f"waiting for traffic: {int(health.requests)}/{config.min_requests} requests on green",
        )
    if rollout.stage is Stage.VERIFICATION:
        return Decision(Action.COMPLETE, f"healthy at 100%: {health.describe()}")
    return Decision(Action.ADVANCE, f"healthy at {rollout.weight}%: {health.describe()}")
