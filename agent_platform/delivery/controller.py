"""The rollout controller: runs the stages and applies each tick's decision.

`deploy` runs preparation and the first deployment step; `tick` (the Dagster sensor, or
`agent-platform deploy watch`) reads green's health and advances, finishes or rolls back;
`rollback` is the manual way back. Verification: a smoke request before the last step, and after
it the smoke request and a short burst of concurrent requests (integration, performance). Every
stage change is recorded three times: in the rollout state (what `deploy status` and the gateway
read), as MLflow tags on green's model version, and in the audit log. The gateway picks up each
change within `serving.champion_ttl_s` at most.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent_platform.audit import AuditLog, AuditLogError, open_audit_log
from agent_platform.delivery.decision import Action, Decision, decide
from agent_platform.delivery.health import (
    GatewayScrape,
    MetricsSource,
    MetricsUnavailableError,
    PrometheusQuery,
    VersionHealth,
    prune,
)
from agent_platform.delivery.performance import probe
from agent_platform.delivery.preparation import (
    FAILED,
    Check,
    approval_checks,
    refused,
    scan_checks,
    version_checks,
)
from agent_platform.delivery.smoke import smoke
from agent_platform.delivery.state import Rollout, RolloutStore, Stage, open_rollout_store
from agent_platform.model_registry.registry import CHAMPION, AgentModelRegistry
from agent_platform.settings import Settings

logger = logging.getLogger(__name__)
CONTROLLER_SUBJECT = "rollout-controller"
CONTROLLER: dict[str, Any] = {"subject": CONTROLLER_SUBJECT, "kind": "service", "verified": True}


class RolloutError(ValueError):
    """A deployment that cannot start or a rollback with nothing to roll back."""


@dataclass(frozen=True)
class TickOutcome:
    rollout: Rollout
    decision: Decision
    health: VersionHealth | None
    changed: bool  # the stage or the weight moved


def metrics_source(settings: Settings) -> MetricsSource:
    delivery = settings.delivery
    kind = delivery.metrics_source or (
        "prometheus" if settings.profile == "production" else "gateway"
    )
    if kind == "prometheus":
        return PrometheusQuery(delivery.prometheus_url)
    return GatewayScrape(delivery.gateway_url)


class RolloutController:
    def __init__(
        self,
        settings: Settings,
        *,
        store: RolloutStore | None = None,
        registry: AgentModelRegistry | None = None,
        audit: AuditLog | None = None,
        source: MetricsSource | None = None,
        smoke_test: Callable[[str, str], list[Check]] | None = None,
        performance_test: Callable[[str, str, str], list[Check]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.config = settings.delivery
        self.store = store or open_rollout_store(settings)
        self.registry = registry or AgentModelRegistry.from_settings(settings)
        self.audit = audit or open_audit_log(settings)
        self.source = source or metrics_source(settings)
        self.smoke_test = smoke_test or (
            lambda agent, version: smoke(
                self.config.gateway_url, agent, version, self.config.smoke_tenant
            )
        )
        self.performance_test = performance_test or (
            lambda agent, version, blue: probe(
                self.config.gateway_url,
                agent,
                version,
                self.config.smoke_tenant,
                baseline=blue if blue.isdigit() else None,  # "default": not addressable
                max_p95_ms=self.config.max_p95_latency_ms,
                max_error_rate=self.config.max_error_rate,
            )
        )
        self.clock = clock

    # --- approvals ---------------------------------------------------------------------------
    def approve(
        self, version: int, *, role: str, actor: dict[str, Any], agent: str | None = None
    ) -> None:
        agent = agent or self.settings.serving_agent
        if role not in self.config.required_approvals:
            raise RolloutError(
                f"--role: {role!r} is not a deployment approver role "
                f"({', '.join(self.config.required_approvals)})"
            )
        target = self.registry.get(agent, version)
        subject = str(actor.get("username") or actor.get("subject"))
        verified = bool(actor.get("verified"))
        self.store.approve(
            agent, str(target.version), role=role, subject=subject, verified=verified
        )
        self.audit.record(
            "rollout.approve",
            actor=actor,
            action="deploy",
            outcome="approved",
            resource=f"model:{agent}@{target.version}",
            role=role,
        )

    # --- stages ------------------------------------------------------------------------------
    def deploy(
        self, version: int | str, *, actor: dict[str, Any], agent: str | None = None
    ) -> Rollout:
        """Preparation, then green beside blue at the first step (or refused, with why)."""
        agent = agent or self.settings.serving_agent
        active = self.store.active(agent)
        if active is not None:
            raise RolloutError(
                f"{agent}: v{active.green} is still rolling out ({active.stage}, "
                f"{active.weight}%); `agent-platform deploy rollback` or wait for it"
            )
        target = self.registry.get(agent, version)
        champion = self.registry.aliases(agent).get(CHAMPION)
        if champion is None:
            raise RolloutError(
                f"{agent} has no champion to deploy beside; promote a first version with "
                "`agent-platform models promote`"
            )
        rollout = Rollout(
            agent=agent, blue=str(champion), green=str(target.version), by=str(actor["subject"])
        )
        checks = [
            *version_checks(target, champion),
            *scan_checks(self.settings.home_dir),
            *approval_checks(self.store, self.settings, agent, rollout.green),
        ]
        if not refused(checks):
            rollout.stage = Stage.DEPLOYMENT  # weight 0: the gateway pins blue, loads green
            self.store.save(rollout)
            checks += self.smoke_test(agent, rollout.green)
        rollout.checks = [c.as_dict() for c in checks]
        failures = refused(checks)
        if failures:
            rollout.stage = Stage.REFUSED
            rollout.reason = "; ".join(f"{c.name}: {c.detail}" for c in failures)
            self._record(rollout, "preparation", "refused", actor)
            return rollout
        self._record(rollout, "preparation", "passed", actor)
        now = self.clock()
        baseline = self.source.sample(rollout.green)
        rollout.samples = [(now, baseline)] if baseline is not None else []
        self._step(rollout, 0, now)
        self._record(rollout, "deployment", "started", actor)
        return rollout

    def tick(self, agent: str | None = None) -> TickOutcome | None:
        """Read green's health and apply the decision; None without an active rollout."""
        agent = agent or self.settings.serving_agent
        rollout = self.store.active(agent)
        if rollout is None:
            return None
        now = self.clock()
        try:
            sample = self.source.sample(rollout.green)
            if sample is not None:
                rollout.samples = prune(
                    [*rollout.samples, (now, sample)], now, self.config.window_s
                )
            health = self.source.health(rollout.green, rollout.samples, now, self.config.window_s)
        except MetricsUnavailableError as exc:  # never shift traffic blind
            return TickOutcome(rollout, Decision(Action.HOLD, str(exc)), None, False)
        decision = decide(rollout, health, self.config, now)
        if decision.action is Action.ROLLBACK:
            rolled_back = self._rollback(rollout, decision.reason, CONTROLLER)
            return TickOutcome(rolled_back, decision, health, True)
        if decision.action is Action.HOLD:
            self.store.save(rollout)
            return TickOutcome(rollout, decision, health, False)
        last_step = rollout.step + 1 == len(self.config.steps) - 1
        verification = (
            self.smoke_test(agent, rollout.green)
            if decision.action is Action.COMPLETE or last_step
            else []
        )  # before the last step and after it; after it, a burst of requests as well
        if decision.action is Action.COMPLETE and not refused(verification):
            verification += self.performance_test(agent, rollout.green, rollout.blue)
        rollout.checks += [c.as_dict() for c in verification]
        failed = [c for c in verification if c.status == FAILED]
        if failed:
            why = "verification: " + "; ".join(f"{c.name}: {c.detail}" for c in failed)
            return TickOutcome(self._rollback(rollout, why, CONTROLLER), decision, health, True)
        if decision.action is Action.COMPLETE:
            rollout.stage, rollout.reason = Stage.COMPLETED, decision.reason
            self._record(rollout, "verification", "completed", CONTROLLER, health=health)
            return TickOutcome(rollout, decision, health, True)
        self._step(rollout, rollout.step + 1, now)
        if rollout.weight == 100:
            self.registry.promote(
                agent,
                int(rollout.green),
                by=CONTROLLER_SUBJECT,
                reason=f"rollout {rollout.id}: green serves 100%",
            )
            rollout.stage = Stage.VERIFICATION
        self._record(rollout, "deployment", f"{rollout.weight}%", CONTROLLER, health=health)
        return TickOutcome(rollout, decision, health, True)

    def tick_all(self) -> list[TickOutcome]:
        return [o for a in self.store.agents() if (o := self.tick(a)) is not None]

    def rollback(self, *, reason: str, actor: dict[str, Any], agent: str | None = None) -> Rollout:
        agent = agent or self.settings.serving_agent
        rollout = self.store.active(agent)
        if rollout is None:
            raise RolloutError(f"{agent} has no rollout in progress to roll back")
        return self._rollback(rollout, reason or "manual rollback", actor)

    # --- internals ---------------------------------------------------------------------------
    def _step(self, rollout: Rollout, step: int, now: float) -> None:
        rollout.step, rollout.weight = step, self.config.steps[step]
        rollout.step_started_at = now
        self.store.save(rollout)

    def _rollback(self, rollout: Rollout, reason: str, actor: dict[str, Any]) -> Rollout:
        """Traffic back to blue first (the state the gateways read), then the alias."""
        moved = rollout.stage is Stage.VERIFICATION
        rollout.stage, rollout.weight, rollout.reason = Stage.ROLLED_BACK, 0, reason
        alias = "unchanged"
        try:
            if moved and self.registry.aliases(rollout.agent).get(CHAMPION) == int(rollout.green):
                self.registry.rollback(
                    rollout.agent, by=str(actor["subject"]), to=int(rollout.blue), reason=reason
                )
                alias = f"restored to v{rollout.blue}"
        except Exception as exc:  # traffic still returns to blue; the record says the alias failed
            alias = f"NOT restored: {exc}"
            logger.error("rollout %s: champion alias not restored: %s", rollout.id, exc)
        self.store.save(rollout)
        self._record(rollout, "rollback", "rolled_back", actor, champion_alias=alias)
        return rollout

    def _record(
        self,
        rollout: Rollout,
        stage: str,
        outcome: str,
        actor: dict[str, Any],
        health: VersionHealth | None = None,
        **details: Any,
    ) -> None:
        """The rollout state, MLflow tags on green's version and the audit log."""
        extra = {"health": health.describe()} if health is not None else {}
        rollout.note(stage, outcome=outcome, weight=rollout.weight, **extra, **details)
        self.store.save(rollout)
        tags = {
            "rollout.id": rollout.id,
            "rollout.stage": str(rollout.stage),
            "rollout.weight": str(rollout.weight),
            "rollout.reason": rollout.reason[:5000] or "-",
            f"rollout.{stage}": outcome,
        }
        try:
            for key, value in tags.items():
                self.registry.client.set_model_version_tag(rollout.agent, rollout.green, key, value)
        except Exception as exc:
            logger.warning("rollout %s: MLflow tags not written: %s", rollout.id, exc)
        try:
            self.audit.record(
                f"rollout.{stage}",
                actor=actor,
                action="deploy",
                outcome=outcome,
                resource=f"model:{rollout.agent}@{rollout.green}",
                rollout=rollout.id,
                blue=rollout.blue,
                weight=rollout.weight,
                reason=rollout.reason,
                checks=[c for c in rollout.checks if c["status"] != "passed"],
                **extra,
                **details,
            )
        except AuditLogError as exc:
            if stage != "rollback":  # a rollback is never held back by the log
                raise
            logger.error("rollout %s: rollback not in the audit log: %s", rollout.id, exc)
