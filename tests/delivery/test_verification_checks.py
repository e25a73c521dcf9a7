"""The verification stage's integration and performance checks after the last traffic step: the
verdict from a burst's numbers (injected here; the live rollout test runs the real burst through
a gateway), the checks recorded on the rollout, a failing burst rolling green back, and an honest
`not_verified` when there is no tenant to ask."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent_platform.delivery.controller import RolloutController
from agent_platform.delivery.health import MetricsSource, VersionHealth
from agent_platform.delivery.performance import Probe, p95, probe, verdict
from agent_platform.delivery.preparation import FAILED, NOT_VERIFIED, PASSED, Check
from agent_platform.delivery.state import Rollout, SQLiteRolloutStore, Stage
from agent_platform.settings import Settings

LIMITS = {"max_p95_ms": 500.0, "max_error_rate": 0.01}


def burst(latencies: list[float], failed: int = 0, version: str = "2") -> list[Probe]:
    ok = [Probe(200, ms, version, True) for ms in latencies[failed:]]
    return [Probe(503, ms, version, False) for ms in latencies[:failed]] + ok


def statuses(checks: list[Check]) -> dict[str, str]:
    return {c.name: c.status for c in checks}


def test_p95_is_the_nearest_rank() -> None:
    assert p95([float(ms) for ms in range(1, 21)]) == 19.0  # 20 samples: the 19th
    assert p95([300.0]) == 300.0 and p95([]) is None


@pytest.mark.parametrize(
    ("latencies", "failed", "expected"),
    [
        ([100.0] * 19 + [900.0], 0, {"integration": PASSED, "performance": PASSED}),  # p95: 100
        ([100.0] * 18 + [600.0] * 2, 0, {"integration": PASSED, "performance": FAILED}),
        ([100.0] * 20, 1, {"integration": PASSED, "performance": FAILED}),  # 5 % > 1 %
        ([500.0] * 20, 0, {"integration": PASSED, "performance": PASSED}),  # at the limit
    ],
)
def test_the_performance_verdict(latencies, failed, expected) -> None:
    checks = verdict(burst(latencies, failed), "2", **LIMITS)
    assert statuses(checks) == expected, checks
    assert "p95" in checks[-1].detail and "limit 500 ms" in checks[-1].detail


@pytest.mark.parametrize(
    ("blue", "expected"),
    [
        ([700.0] * 20, PASSED),  # the machine is slow for both: green is not to blame
        ([100.0] * 20, FAILED),  # only green is slow
        ([500.0] * 20, PASSED),  # 700 is within 1.5 x blue's 500
        ([400.0] * 20, FAILED),  # 700 > 1.5 x 400
    ],
)
def test_a_p95_over_the_limit_fails_only_when_blue_is_clearly_faster(blue, expected) -> None:
    checks = verdict(burst([700.0] * 20), "2", baseline=burst(blue, version="1"), **LIMITS)
    assert statuses(checks)["performance"] == expected, checks
    assert f"blue {blue[0]:.0f} ms" in checks[-1].detail


def test_green_errors_fail_it_whatever_blue_does() -> None:
    checks = verdict(burst([50.0] * 20, 2), "2", baseline=burst([50.0] * 20, 5, "1"), **LIMITS)
    assert statuses(checks)["performance"] == FAILED


def test_answers_from_another_version_or_empty_fail_integration() -> None:
    checks = verdict(burst([50.0] * 3, version="1") + burst([50.0] * 3), "2", **LIMITS)
    assert statuses(checks)["integration"] == FAILED and "not from v2" in checks[0].detail
    empty = [Probe(200, 50.0, "2", False)] * 4
    assert statuses(verdict(empty, "2", **LIMITS))["integration"] == FAILED
    assert statuses(verdict([], "2", **LIMITS)) == {"performance": NOT_VERIFIED}


def test_without_a_tenant_nothing_is_sent_and_it_says_so() -> None:
    checks = probe("http://127.0.0.1:9", "qa", "2", None, **LIMITS)
    assert statuses(checks) == {"integration": NOT_VERIFIED, "performance": NOT_VERIFIED}
    assert "SMOKE_TENANT" in checks[0].detail


class Healthy(MetricsSource):
    """Green's live window, as the controller would read it: plenty of clean traffic."""

    def sample(self, version: str) -> None:
        return None

    def health(self, version: str, samples: list, now: float, window_s: float) -> VersionHealth:
        return VersionHealth(500, 0, 120.0)


def at_last_step(tmp_path: Path, performance: list[Check]) -> tuple[RolloutController, Rollout]:
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    settings = Settings(home=home, delivery={"step_hold_s": 0, "min_requests": 10})
    store = SQLiteRolloutStore.under(home)
    rollout = store.save(
        Rollout(
            agent="qa",
            blue="1",
            green="2",
            stage=Stage.VERIFICATION,
            step=len(settings.delivery.steps) - 1,
            weight=100,
            step_started_at=time.time() - 5,
        )
    )
    smoke = [Check("smoke", PASSED, "qa@2 answered")]
    controller = RolloutController(
        settings,
        store=store,
        source=Healthy(),
        smoke_test=lambda agent, version: smoke,
        performance_test=lambda agent, version, blue: performance,
    )
    return controller, rollout


def test_a_passing_burst_is_recorded_and_the_rollout_completes(tmp_path: Path) -> None:
    numbers = "20 requests: p95 140 ms (limit 500 ms), errors 0.00% (limit 1.00%)"
    checks = [Check("integration", PASSED, "20 of 20"), Check("performance", PASSED, numbers)]
    controller, _ = at_last_step(tmp_path, checks)
    outcome = controller.tick("qa")
    assert outcome is not None and outcome.rollout.stage is Stage.COMPLETED, outcome
    stored = controller.store.latest("qa")
    assert stored is not None and stored.stage is Stage.COMPLETED
    recorded = {c["name"]: c for c in stored.checks}
    assert recorded["performance"] == {"name": "performance", "status": PASSED, "detail": numbers}
    assert recorded["integration"]["status"] == PASSED and recorded["smoke"]["status"] == PASSED


def test_a_slow_burst_rolls_green_back(tmp_path: Path) -> None:
    slow = "20 requests: p95 900 ms (limit 500 ms), errors 0.00% (limit 1.00%)"
    checks = [Check("integration", PASSED, "20 of 20"), Check("performance", FAILED, slow)]
    controller, _ = at_last_step(tmp_path, checks)
    outcome = controller.tick("qa")
    assert outcome is not None and outcome.rollout.stage is Stage.ROLLED_BACK
    stored = controller.store.latest("qa")
    assert stored is not None and stored.weight == 0
    assert stored.reason == f"verification: performance: {slow}"


def test_an_unverified_burst_is_recorded_and_does_not_block(tmp_path: Path) -> None:
    unverified = [Check("performance", NOT_VERIFIED, "no smoke tenant")]
    controller, _ = at_last_step(tmp_path, unverified)
    outcome = controller.tick("qa")
    assert outcome is not None and outcome.rollout.stage is Stage.COMPLETED
    stored = controller.store.latest("qa")
    assert stored is not None
    assert {"name": "performance", "status": NOT_VERIFIED, "detail": "no smoke tenant"} in (
        stored.checks
    )
