"""Circuit breaker transitions, driven by an injected clock (no sleeping)."""

from __future__ import annotations

import pytest

from agent_platform.runtime.circuit_breaker import (
    BreakerState,
    CircuitBreaker,
    CircuitBreakerRegistry,
)
from agent_platform.runtime.config import BreakerSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **settings: object) -> tuple[CircuitBreaker, list[tuple[str, str]]]:
    changes: list[tuple[str, str]] = []
    b = CircuitBreaker(
        "m",
        BreakerSettings(**settings),
        clock=clock,
        on_state_change=lambda name, old, new: changes.append((old.value, new.value)),
    )
    return b, changes


def test_opens_on_error_rate_above_five_percent_with_enough_requests() -> None:
    clock = Clock()
    b, _ = breaker(clock)
    for _ in range(94):
        b.record_success(0.01)
    for _ in range(5):
        b.record_failure(0.01)
    assert b.state is BreakerState.CLOSED  # 99 requests: below the minimum
    b.record_failure(0.01)  # 100 requests, 6% errors
    assert b.state is BreakerState.OPEN
    assert "error rate 6.0% > 5.0%" in (b.last_open_reason or "")
    assert not b.allow()
    assert b.retry_after_s() == pytest.approx(30.0)


def test_five_percent_errors_exactly_keeps_it_closed() -> None:
    clock = Clock()
    b, _ = breaker(clock)
    for i in range(100):
        (b.record_failure if i % 20 == 0 else b.record_success)(0.01)
    assert b.window_stats().error_rate == pytest.approx(0.05)
    assert b.state is BreakerState.CLOSED


def test_opens_on_p95_latency() -> None:
    clock = Clock()
    b, _ = breaker(clock)
    for i in range(100):
        b.record_success(0.9 if i % 10 == 0 else 0.05)  # 10% slow: p95 is 900 ms
    assert b.state is BreakerState.OPEN
    assert "p95 latency 900 ms > 500 ms" in (b.last_open_reason or "")


def test_old_requests_leave_the_sliding_window() -> None:
    clock = Clock()
    b, _ = breaker(clock)
    for _ in range(60):
        b.record_failure(0.01)
    clock.now += 61  # the failures are now outside the 60 s window
    for _ in range(100):
        b.record_success(0.01)
    assert b.window_stats().requests == 100
    assert b.state is BreakerState.CLOSED


def test_half_open_probes_then_closes_on_success() -> None:
    clock = Clock()
    b, changes = breaker(clock, min_requests=10, cooldown_s=30, half_open_max_probes=2)
    for _ in range(10):
        b.record_failure(0.01)
    assert b.state is BreakerState.OPEN
    clock.now += 29.9
    assert not b.allow()
    clock.now += 0.2
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow() and b.allow()
    assert not b.allow()  # probe budget spent
    b.record_success(0.01)
    assert b.state is BreakerState.CLOSED
    assert b.window_stats().requests == 0  # a fresh window after closing
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_failed_probe_reopens_for_another_cooldown() -> None:
    clock = Clock()
    b, changes = breaker(clock, min_requests=10, cooldown_s=30)
    for _ in range(10):
        b.record_failure(0.01)
    clock.now += 30
    assert b.allow()
    b.record_failure(0.01)
    assert b.state is BreakerState.OPEN
    assert b.last_open_reason == "probe failed while half-open"
    clock.now += 29
    assert not b.allow()
    clock.now += 1
    assert b.allow()
    assert changes[-2:] == [("half_open", "open"), ("open", "half_open")]
    assert BreakerState.OPEN.gauge_value == 2 and BreakerState.HALF_OPEN.gauge_value == 1


def test_settings_are_validated_by_field_name() -> None:
    with pytest.raises(ValueError, match="max_error_rate"):
        BreakerSettings(max_error_rate=1.5)
    with pytest.raises(ValueError, match="half_open_successes_to_close"):
        BreakerSettings(half_open_max_probes=1, half_open_successes_to_close=2)


def test_p95_threshold_is_exact_and_slow_calls_leave_the_window() -> None:
    clock = Clock()
    b, _ = breaker(clock)
    for i in range(100):
        b.record_success(0.9 if i < 5 else 0.05)  # 5 % slow: the p95 call is still fast
    assert b.state is BreakerState.CLOSED and b.window_stats().p95_latency_ms == 50
    clock.now += 61  # those slow calls leave the window: they must not count any more
    for i in range(100):
        b.record_success(0.9 if i >= 95 else 0.05)
    assert b.state is BreakerState.CLOSED and b.window_stats().requests == 100
    b.record_success(0.9)  # 6 slow among 101: the p95 call is slow
    assert b.state is BreakerState.OPEN
    assert "p95 latency 900 ms > 500 ms over 101 requests" in (b.last_open_reason or "")


def test_registry_announces_each_new_breaker_then_its_transitions() -> None:
    heard: list[tuple[str, str, str]] = []
    registry = CircuitBreakerRegistry(
        BreakerSettings(min_requests=2),
        clock=Clock(),
        on_state_change=lambda name, old, new: heard.append((name, old.value, new.value)),
    )
    a = registry.get("a")
    assert registry.get("a") is a
    assert heard == [("a", "closed", "closed")]  # once, when created
    a.record_failure(0.01)
    a.record_failure(0.01)
    registry.get("b")
    assert heard == [("a", "closed", "closed"), ("a", "closed", "open"), ("b", "closed", "closed")]
    assert registry.states() == {"a": BreakerState.OPEN, "b": BreakerState.CLOSED}
