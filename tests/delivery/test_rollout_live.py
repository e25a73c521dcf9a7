"""A rollout through a real gateway process under steady load: a green whose model fails every
20th call is rolled back automatically (traffic back to blue, champion untouched, the reason
recorded in the state, MLflow and the audit log), and a healthy green reaches 100% and the
champion alias without one request failing or being dropped by a traffic shift."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent_platform.audit import open_audit_log
from agent_platform.delivery.controller import RolloutController
from agent_platform.delivery.routing import bucket
from agent_platform.model_registry import CHAMPION, AgentModelRegistry
from agent_platform.settings import DeliverySettings, Settings
from tests.delivery.harness import (
    AGENT,
    TENANT,
    FlakyModel,
    Load,
    approve,
    gateway_env,
    prepare_home,
    run_until,
    start_gateway,
)

OPERATOR = {"subject": "dev:ops", "username": "ops", "verified": False}


@dataclass
class Live:
    home: Path
    url: str
    versions: dict[str, int]
    model: FlakyModel

    def controller(self, min_requests: int) -> RolloutController:
        delivery = DeliverySettings(
            gateway_url=self.url,
            smoke_tenant=TENANT,
            step_hold_s=1,
            window_s=30,
            min_requests=min_requests,
            max_p95_latency_ms=30_000,  # a shared 2-core machine: latency is not under test here
        )
        return RolloutController(Settings(home=self.home, delivery=delivery))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("rollout")
    versions = prepare_home(root / "home")
    model = FlakyModel(fail_every=20)
    process, url = start_gateway(root / "home", root / "gateway.log", gateway_env(model.base_url))
    yield Live(root / "home", url, versions, model)
    process.terminate()
    process.wait(timeout=60)
    model.close()


def settle() -> float:
    """Past the gateway's rollout-state and alias caches (1 s each)."""
    time.sleep(2.5)
    return time.time()


def test_a_failing_green_is_rolled_back_and_blue_keeps_serving(live: Live):
    blue, green = str(live.versions["blue"]), str(live.versions["flaky"])
    # 25 requests per verdict: green's 20th call (the first injected failure) comes before the
    # first step could end, so the rollback happens at 10% and the alias never moved
    controller = live.controller(min_requests=25)
    approve(controller, live.versions["flaky"])
    with Load(live.url) as load:
        time.sleep(1)
        rollout = controller.deploy(int(green), actor=OPERATOR, agent=AGENT)
        assert (rollout.stage, rollout.weight) == ("deployment", 10), rollout.checks
        outcome = run_until(controller, {"rolled_back", "completed"}, timeout_s=90)
        after = settle()
        time.sleep(1.5)
    rollout = outcome.rollout
    assert rollout.stage == "rolled_back" and rollout.weight == 0, rollout.summary()
    assert "error rate" in rollout.reason
    assert live.model.failures >= 1

    answers = load.answers
    assert all(a.status != 0 for a in answers), "a request got no answer"
    failed = [a for a in answers if a.status != 200]
    assert failed and {(a.status, a.version) for a in failed} == {(502, green)}
    assert {a.version for a in answers} == {blue, green}
    on_green = {a.caller for a in answers if a.version == green}
    assert all(bucket(*caller) < 10 for caller in on_green)  # only the 10% step's callers
    late = [a for a in answers if a.at >= after]
    assert late and {(a.status, a.version) for a in late} == {(200, blue)}

    settings = Settings(home=live.home)
    registry = AgentModelRegistry.from_settings(settings)
    assert registry.aliases(AGENT)[CHAMPION] == int(blue)
    tags = registry.get(AGENT, int(green)).tags
    assert tags["rollout.stage"] == "rolled_back" and "error rate" in tags["rollout.reason"]
    kinds = [r.kind for r in open_audit_log(settings).tail(20)]
    assert {"rollout.approve", "rollout.preparation", "rollout.deployment"} <= set(kinds)
    assert kinds[-1] == "rollout.rollback"


def test_a_healthy_green_reaches_everyone_without_a_failed_request(live: Live):
    blue, green = str(live.versions["blue"]), str(live.versions["healthy"])
    controller = live.controller(min_requests=10)
    approve(controller, live.versions["healthy"])
    with Load(live.url) as load:
        time.sleep(1)
        rollout = controller.deploy(int(green), actor=OPERATOR, agent=AGENT)
        assert rollout.stage == "deployment", rollout.reason
        outcome = run_until(controller, {"rolled_back", "completed"}, timeout_s=150)
        after = settle()
        time.sleep(1.5)
    rollout = outcome.rollout
    assert rollout.stage == "completed", rollout.summary()
    steps = [e["weight"] for e in rollout.events if e["event"] == "deployment"]
    assert steps == [10, 50, 100]

    answers = load.answers
    assert {a.status for a in answers} == {200}, "a traffic shift failed or dropped a request"
    seen: dict[tuple[str, str], str] = {}
    for answer in sorted(answers, key=lambda a: a.at):  # once on green, a caller stays there
        if seen.get(answer.caller) == green:
            assert answer.version == green, answer
        seen[answer.caller] = answer.version
    late = [a for a in answers if a.at >= after]
    assert late and {a.version for a in late} == {green}
    registry = AgentModelRegistry.from_settings(Settings(home=live.home))
    assert registry.aliases(AGENT)[CHAMPION] == int(green)
    assert registry.get(AGENT, int(green)).tags["rollout.stage"] == "completed"
    assert blue != green
