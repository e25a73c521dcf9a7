"""The controller's arithmetic without a gateway: the rollback verdict, the hold and advance
rules, the sliding window over cumulative counters, the p95 from buckets, the sticky hash and
the validation of the steps."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from agent_platform.delivery.decision import Action, decide
from agent_platform.delivery.health import VersionHealth, prune, quantile, snapshot, window
from agent_platform.delivery.routing import bucket, version_for
from agent_platform.delivery.state import Rollout, Stage
from agent_platform.settings import DeliverySettings

CONFIG = DeliverySettings(min_requests=100, step_hold_s=60)


def rollout(weight: int = 10, stage: Stage = Stage.DEPLOYMENT, held_s: float = 0) -> Rollout:
    return Rollout(
        agent="a", blue="1", green="2", stage=stage, weight=weight, step_started_at=1000 - held_s
    )


@pytest.mark.parametrize(
    ("health", "action", "why"),
    [
        (VersionHealth(40, 2, 50), Action.ROLLBACK, "errors in 40 requests"),  # burst: 2 > 1
        (VersionHealth(40, 1, 50), Action.HOLD, "held"),  # 1 of 40: no verdict yet
        (VersionHealth(300, 4, 50), Action.ROLLBACK, "error rate 1.33%"),
        (VersionHealth(300, 3, 50), Action.HOLD, "held"),  # exactly 1%: not over
        (VersionHealth(300, 0, 800), Action.ROLLBACK, "p95 latency 800 ms"),
        (VersionHealth(20, 0, 900), Action.HOLD, "held"),  # too few for a p95 verdict
    ],
)
def test_rollback_verdicts(health: VersionHealth, action: Action, why: str) -> None:
    decision = decide(rollout(), health, CONFIG, now=1000)
    assert decision.action is action and why in decision.reason, decision


def test_a_step_advances_only_after_its_hold_with_enough_traffic() -> None:
    healthy = VersionHealth(150, 1, 120)
    assert decide(rollout(held_s=59), healthy, CONFIG, 1000).action is Action.HOLD
    assert decide(rollout(held_s=61), healthy, CONFIG, 1000).action is Action.ADVANCE
    quiet = decide(rollout(held_s=61), VersionHealth(99, 0, 10), CONFIG, 1000)
    assert quiet.action is Action.HOLD and "waiting for traffic" in quiet.reason
    last = rollout(100, Stage.VERIFICATION, held_s=61)
    assert decide(last, healthy, CONFIG, 1000).action is Action.COMPLETE
    assert decide(rollout(0, Stage.ROLLED_BACK), healthy, CONFIG, 1000).action is Action.HOLD


EXPOSITION = """\
agent_platform_http_request_duration_seconds_bucket{{agent_version="2",le="0.1",method="POST",\
route="/v1/chat/completions",status="200"}} {ok_fast}
agent_platform_http_request_duration_seconds_bucket{{agent_version="2",le="1.0",method="POST",\
route="/v1/chat/completions",status="200"}} {ok}
agent_platform_http_request_duration_seconds_bucket{{agent_version="2",le="+Inf",method="POST",\
route="/v1/chat/completions",status="200"}} {ok}
agent_platform_http_request_duration_seconds_count{{agent_version="2",method="POST",\
route="/v1/chat/completions",status="200"}} {ok}
agent_platform_http_request_duration_seconds_count{{agent_version="2",method="POST",\
route="/v1/chat/completions",status="502"}} {failed}
agent_platform_http_request_duration_seconds_count{{agent_version="1",method="POST",\
route="/v1/chat/completions",status="502"}} 99
agent_platform_http_request_duration_seconds_count{{agent_version="2",method="GET",\
route="/v1/agents/{{agent}}",status="500"}} 7
"""


def test_the_window_differences_green_counters_and_survives_a_restart() -> None:
    def sample(ok: int, fast: int, failed: int) -> dict:
        text = EXPOSITION.format(ok=ok, ok_fast=fast, failed=failed)
        return snapshot(text, "2")

    first = sample(100, 100, 1)
    assert (first["requests"], first["errors"]) == (101, 1)  # blue's and GET errors excluded
    samples = [(0.0, first), (30.0, sample(150, 120, 1)), (70.0, sample(300, 200, 4))]
    health = window(samples, now=70.0, window_s=60)  # base: the sample at t=0 is outside
    assert (health.requests, health.errors) == (304 - 101, 4 - 1)
    assert health.p95_ms == pytest.approx(910)  # half of the 200 new answers took over 100 ms
    assert [at for at, _ in prune(samples, 70.0, 60)] == [0.0, 30.0, 70.0]
    assert [at for at, _ in prune(samples, 100.0, 60)] == [30.0, 70.0]
    restarted = window([*samples, (80.0, sample(5, 5, 0))], now=80.0, window_s=60)
    assert (restarted.requests, restarted.errors) == (5, 0)


def test_quantile_interpolates_like_prometheus() -> None:
    assert quantile(0.95, {"0.1": 50, "0.5": 90, "1.0": 100, "+Inf": 100}) == pytest.approx(750)
    assert quantile(0.5, {"0.1": 0, "+Inf": 10}) == pytest.approx(100)  # the highest finite
    assert quantile(0.95, {"+Inf": 0}) is None


def test_a_caller_keeps_its_version_while_the_weight_grows() -> None:
    callers = [(f"user{i}", f"s{i}") for i in range(2000)]
    assert bucket("alice", "s1") == bucket("alice", "s1") != bucket("alice", "s2")
    on_green = {}
    for weight in (10, 50, 100):
        live = rollout(weight)
        green = {c for c in callers if version_for(live, *c) == "2"}
        assert abs(len(green) / len(callers) - weight / 100) < 0.05
        assert on_green.get("before", set()) <= green  # nobody goes back to blue
        on_green["before"] = green
    assert {version_for(rollout(0, Stage.ROLLED_BACK), *c) for c in callers} == {"1"}


@pytest.mark.parametrize("steps", [[10, 50], [50, 10, 100], [0, 100], []])
def test_steps_must_increase_to_everyone(steps: list[int]) -> None:
    with pytest.raises(ValidationError, match=r"delivery\.steps"):
        DeliverySettings(steps=steps)


def test_anonymous_requests_split_by_the_weight_and_callers_stay_sticky() -> None:
    """Without user and session each request draws its bucket (here from a seeded generator),
    so anonymous traffic follows the weight instead of all landing on one version."""
    draw = random.Random(20261207).random
    for weight in (10, 50):
        live = rollout(weight)
        served = [version_for(live, None, None, draw) for _ in range(5000)]
        assert abs(served.count("2") / len(served) - weight / 100) < 0.03, weight
        assert {version_for(live, "", None, draw) for _ in range(200)} == {"1", "2"}  # blank
    live = rollout(50)
    for caller in [("alice", None), (None, "s1"), ("bob", "s2")]:  # something to stay on
        assert len({version_for(live, *caller, draw) for _ in range(200)}) == 1, caller
    assert {version_for(rollout(100), None, None, draw) for _ in range(100)} == {"2"}
    assert {version_for(rollout(0, Stage.ROLLED_BACK), None, None, draw) for _ in range(100)} == {
        "1"
    }


def test_the_gateways_view_draws_anonymous_buckets_from_its_generator(tmp_path) -> None:
    from agent_platform.delivery.state import SQLiteRolloutStore
    from agent_platform.gateway.rollouts import RolloutView

    store = SQLiteRolloutStore.under(tmp_path)
    store.save(rollout(10))
    changed: list[str] = []
    views = [RolloutView(store, changed.append, rng=random.Random(7)) for _ in range(2)]
    for view in views:
        view.refresh("a")
    picks = [[view.version("a", None, None) for _ in range(3000)] for view in views]
    assert picks[0] == picks[1]  # the injected generator decides
    assert abs(picks[0].count("2") / 3000 - 0.10) < 0.025
    assert {views[0].version("a", "carol", "s9") for _ in range(50)} in ({"1"}, {"2"})
    assert changed == ["a", "a"]
