"""The rollout controller's production metrics source (`PrometheusQuery`) against the session's
real Prometheus scraping the real gateway: the error rate and p95 it reads for one version match
what the gateway itself counted over the same traffic, and when Prometheus cannot be reached the
controller holds (never shifts traffic blind)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import httpx
import pytest

from agent_platform.delivery.controller import RolloutController
from agent_platform.delivery.decision import Action
from agent_platform.delivery.health import (
    AGENT_ROUTES,
    DURATION,
    ROUTES_REGEX,
    MetricsUnavailableError,
    PrometheusQuery,
    VersionHealth,
    quantile,
    snapshot,
)
from agent_platform.delivery.state import Rollout, SQLiteRolloutStore, Stage
from agent_platform.settings import Settings
from tests.gateway.conftest import free_port
from tests.operations.conftest import TENANT, Prometheus

AGENT = "grounded-qa"
WARM = 40
# The window the source is asked about spans at least this many 1 s scrapes. Over a window of a
# few scrapes, `increase` extrapolates each series by its own factor (a series' extrapolation
# stops where its counter would reach zero), so the 5xx share came out 0.29-0.30 for a true 0.2
# twice under load; over a longer window, with counters well above the window's increase, the
# factors agree, as in the controller's 60 s window.
MIN_WINDOW_S = 12
FAILING, FINE = 6, 24  # 503s (tenant without an index), 404s (no such tenant: a caller's error)


def ask(client: httpx.Client, tenant: str, index: int) -> httpx.Response:
    """One agent request, alternating the two agent routes the source counts."""
    if index % 2:
        body = {"tenant": tenant, "user": f"u{index}", "input": "hi"}
        return client.post(f"/v1/agents/{AGENT}/runs", json=body, headers={"X-Tenant": tenant})
    body = {"model": AGENT, "messages": [{"role": "user", "content": "hi"}], "user": f"u{index}"}
    return client.post("/v1/chat/completions", json=body, headers={"X-Tenant": tenant})


def scraped(gateway, version: str) -> dict:
    return snapshot(httpx.get(f"{gateway.url}/metrics", timeout=10).text, version)


def wait_for_scrape(prometheus: Prometheus, version: str, requests: float) -> None:
    """Until Prometheus holds the gateway's current count (then one more scrape)."""
    selector = f'{{agent_version="{version}",route=~"{ROUTES_REGEX}"}}'
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = prometheus.get("/api/v1/query", query=f"sum({DURATION}_count{selector})")
        values = result["data"]["result"]
        if values and float(values[0]["value"][1]) == requests:
            time.sleep(1.5)
            return
        time.sleep(0.3)
    raise AssertionError(f"prometheus never saw {requests} requests of v{version}")


def bucket_of(ms: float) -> tuple[float, float]:
    """The histogram bucket (lower, upper bound in ms) a latency falls in."""
    from agent_platform.gateway.metrics import BUCKETS

    lower = 0.0
    for bound in BUCKETS:
        if ms <= bound * 1000 + 1e-6:
            return lower, bound * 1000
        lower = bound * 1000
    return lower, math.inf


def test_prometheus_query_reads_a_versions_error_rate_and_p95(gateway, prometheus) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        # warm-up: every series exists (and is scraped) before the window's traffic, so
        # `increase` neither misses a series born inside the window nor stops its extrapolation
        # at zero (counters well above zero, as in production)
        warm = [ask(client, TENANT, i) for i in range(WARM)]
        warm += [ask(client, "nobody", i) for i in range(WARM)]
        assert [r.status_code for r in warm] == [503] * WARM + [404] * WARM, warm[0].text
        version = warm[0].headers["x-agent-version"]
        before = scraped(gateway, version)
        wait_for_scrape(prometheus, version, before["requests"])
        # the window reaches up to 3 s before `started`: no sample there may predate the warm-up's
        # end, or its requests would count as the window's
        time.sleep(3)
        started = time.time()
        answers = [ask(client, TENANT, i) for i in range(FAILING)]
        answers += [ask(client, "nobody", i) for i in range(FINE)]
    assert sorted({r.status_code for r in answers}) == [404, 503]
    assert {r.headers["x-agent-version"] for r in answers} == {version}
    after = scraped(gateway, version)
    assert after["requests"] - before["requests"] == FAILING + FINE  # nothing else was sent
    wait_for_scrape(prometheus, version, after["requests"])
    time.sleep(max(0.0, started + MIN_WINDOW_S - time.time()))

    window_s = math.ceil(time.time() - started) + 2
    health = PrometheusQuery(prometheus.url).health(version, [], time.time(), window_s)

    # `increase` extrapolates from the first and last sample to the window's edges: over a
    # window of a few scrapes the count comes out up to window/(window - 2 scrapes) too high
    # (2 % over the controller's 60 s), alike for every series, so the share stays right
    assert FAILING + FINE <= health.requests <= (FAILING + FINE) * window_s / (window_s - 2.5)
    # the share the gateway answered with a 5xx (a loaded machine can refuse a "fine" request too)
    answered = sum(r.status_code >= 500 for r in answers) / len(answers)
    assert answered >= FAILING / (FAILING + FINE)
    statuses = sorted(r.status_code for r in answers)
    assert health.error_rate == pytest.approx(answered, abs=0.02), (health, statuses)
    buckets = {le: n - before["buckets"].get(le, 0.0) for le, n in after["buckets"].items()}
    expected = quantile(0.95, buckets)
    assert expected is not None and health.p95_ms is not None, health
    low, high = bucket_of(expected)
    assert low <= health.p95_ms <= high, (health.p95_ms, expected)
    print(f"window {window_s} s: {health.describe()}; gateway's own p95 {expected:.1f} ms")
    # another version's traffic is not counted; a label is quoted, never spliced into PromQL
    other = PrometheusQuery(prometheus.url).health('v"} or vector(1) #\\', [], time.time(), 60)
    assert other == VersionHealth(0, 0, None)
    assert set(AGENT_ROUTES) == {"/v1/chat/completions", "/v1/agents/{agent}/runs"}


def test_an_unreachable_prometheus_holds_the_rollout(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(MetricsUnavailableError, match="prometheus at"):
        PrometheusQuery(dead, timeout_s=2).health("2", [], time.time(), 60)

    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    settings = Settings(home=home, delivery={"step_hold_s": 0, "min_requests": 1})
    store = SQLiteRolloutStore.under(home)
    live = store.save(
        Rollout(agent=AGENT, blue="1", green="2", stage=Stage.DEPLOYMENT, step=0, weight=10)
    )
    controller = RolloutController(
        settings, store=store, source=PrometheusQuery(dead, timeout_s=2), smoke_test=lambda *a: []
    )
    for _ in range(3):  # the step's hold is over: only the missing metrics keep it at 10 %
        outcome = controller.tick(AGENT)
        assert outcome is not None and outcome.decision.action is Action.HOLD, outcome
        assert "prometheus at" in outcome.decision.reason and outcome.health is None
    kept = store.latest(AGENT)
    assert kept is not None
    assert (kept.stage, kept.step, kept.weight) == (Stage.DEPLOYMENT, 0, 10)
    assert kept.updated_at == live.updated_at  # not a write: nothing advanced or promoted
    assert kept.events == live.events == []  # no stage recorded, no champion moved
