"""A rollout through a real gateway process under steady load: a green whose model fails every
20th call is rolled back automatically (traffic back to blue, champion untouched, the reason
recorded in the state, MLflow and the audit log), and a healthy green, deployed with
`agent-platform deploy` (the Dagster job) and driven by the Dagster sensor's ticks, reaches 100%
and the champion alias without one request failing or being dropped by a traffic shift."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import pytest
from typer.testing import CliRunner

from agent_platform.audit import open_audit_log
from agent_platform.cli.main import app
from agent_platform.delivery.controller import RolloutController
from agent_platform.delivery.routing import bucket
from agent_platform.model_registry import CHAMPION, AgentModelRegistry
from agent_platform.settings import DeliverySettings, Settings
from resources.model_registry import LocalModelRegistryResource
from sensors.delivery import build_rollout_sensor
from tests.delivery.harness import (
    AGENT,
    APPROVERS,
    TENANT,
    FlakyModel,
    Load,
    approve,
    gateway_env,
    prepare_home,
    run_until,
    start_gateway,
)

cli = CliRunner(env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
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
    counted = f'agent_platform_rollout_rollbacks_total{{agent="{AGENT}"}} 1.0'  # the alert's
    deadline = time.monotonic() + 20  # the operations metrics are re-read every 15 s
    while counted not in httpx.get(f"{live.url}/metrics", timeout=10).text:
        assert time.monotonic() < deadline, "the rollback is not on /metrics"
        time.sleep(1)
    kinds = [r.kind for r in open_audit_log(settings).tail(20)]
    assert {"rollout.approve", "rollout.preparation", "rollout.deployment"} <= set(kinds)
    assert kinds[-1] == "rollout.rollback"


def test_a_healthy_green_deployed_from_the_cli_reaches_everyone_by_the_sensor(
    live: Live, monkeypatch: pytest.MonkeyPatch
):
    """`agent-platform deploy VERSION` (the Dagster job), then the Dagster sensor's ticks."""
    blue, green = str(live.versions["blue"]), str(live.versions["healthy"])
    environment = {
        "AGENT_PLATFORM_HOME": str(live.home),
        "DAGSTER_HOME": str(live.home / "dagster"),
        "AGENT_PLATFORM_DELIVERY__GATEWAY_URL": live.url,
        "AGENT_PLATFORM_DELIVERY__SMOKE_TENANT": TENANT,
        "AGENT_PLATFORM_DELIVERY__STEP_HOLD_S": "1",
        "AGENT_PLATFORM_DELIVERY__MIN_REQUESTS": "10",
        "AGENT_PLATFORM_DELIVERY__MAX_P95_LATENCY_MS": "30000",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AGENT_PLATFORM_CONFIG_FILE", raising=False)
    for role, name in APPROVERS.items():
        approved = cli.invoke(app, ["--as", name, "deploy", "approve", green, "--role", role])
        assert approved.exit_code == 0 and "unverified development identity" in approved.output
    sensor = build_rollout_sensor(15)
    registry_resource = LocalModelRegistryResource(home=str(live.home))
    materializations: list[dg.AssetMaterialization] = []
    with Load(live.url) as load:
        time.sleep(1)
        started = cli.invoke(app, ["--as", "ops", "deploy", green, "--agent", AGENT])
        assert started.exit_code == 0, started.output
        assert f"v{green} deployment at 10% beside v{blue}" in started.output
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            with dg.build_sensor_context(resources={"model_registry": registry_resource}) as ctx:
                result = sensor(ctx)
            materializations += result.asset_events
            if any(m.metadata["stage"].value == "completed" for m in result.asset_events):
                break
            time.sleep(0.5)
        after = settle()
        time.sleep(1.5)
    status = cli.invoke(app, ["deploy", "status", "--json", "--agent", AGENT])
    rollout = json.loads(status.stdout)
    assert rollout["stage"] == "completed", rollout
    steps = [e["weight"] for e in rollout["events"] if e["event"] == "deployment"]
    assert steps == [10, 50, 100]
    burst = {c["name"]: c for c in rollout["checks"]}  # after the last step, through the gateway
    assert burst["integration"]["status"] == "passed", burst
    assert (
        burst["performance"]["status"] == "passed"
        and "20 requests" in burst["performance"]["detail"]
    ), burst
    stages = [m.metadata["stage"].value for m in materializations]
    assert stages[-1] == "completed" and "verification" in stages
    assert materializations[-1].metadata["green_error_rate"].value == 0.0

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
    nothing = cli.invoke(app, ["--as", "ops", "deploy", "rollback", "--agent", AGENT])
    assert nothing.exit_code == 1 and "no rollout in progress" in nothing.output
