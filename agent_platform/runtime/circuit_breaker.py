"""A circuit breaker per model, so a failing or slow provider stops receiving traffic quickly.

Closed: calls flow, and every outcome enters a sliding window. When the window (default 60 s)
holds at least `min_requests` calls and either the error rate exceeds `max_error_rate` or the p95
latency exceeds `max_p95_latency_ms`, the circuit opens. Open: calls are refused until
`cooldown_s` has passed, then it is half-open. Half-open: at most `half_open_max_probes` calls go
through; `half_open_successes_to_close` successes close it (with a fresh window), any failure opens
it again for another cool-down. The clock is injectable so tests need not sleep.

Every call updates the breaker, so it keeps running counts of errors and of calls slower than the
latency threshold: deciding is O(1) per call. p95 > threshold exactly when more than
`n - ceil(0.95 n)` calls are slower than it, so the window is sorted only to report the p95.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from agent_platform.runtime.config import BreakerSettings

Clock = Callable[[], float]
StateListener = Callable[[str, "BreakerState", "BreakerState"], None]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def gauge_value(self) -> int:
        """0 closed, 1 half-open, 2 open: the value exported as a metric."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


@dataclass(frozen=True)
class WindowStats:
    requests: int
    errors: int
    error_rate: float
    p95_latency_ms: float


class CircuitBreaker:
    """The breaker of one model. Call `allow()` before a call and `record_*` after it."""

    def __init__(
        self,
        name: str,
        config: BreakerSettings | None = None,
        *,
        clock: Clock = time.monotonic,
        on_state_change: StateListener | None = None,
    ) -> None:
        self.name = name
        self.config = config or BreakerSettings()
        self._clock = clock
        self._listener = on_state_change
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._window: deque[tuple[float, bool, float]] = deque()  # (time, ok, latency_ms)
        self._errors = 0  # failures in the window
        self._slow = 0  # calls in the window slower than max_p95_latency_ms
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self.last_open_reason: str | None = None

    @property
    def state(self) -> BreakerState:
        with self._lock:
            self._maybe_half_open()
            return self._state

    def retry_after_s(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when not open)."""
        with self._lock:
            self._maybe_half_open()
            if self._state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._opened_at + self.config.cooldown_s - self._clock())

    def allow(self) -> bool:
        """Whether a call may go through now; in half-open it takes one probe slot."""
        with self._lock:
            self._maybe_half_open()
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                return False
            if self._probes_in_flight >= self.config.half_open_max_probes:
                return False
            self._probes_in_flight += 1
            return True

    def record_success(self, latency_s: float) -> None:
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._probes_in_flight = max(0, self._probes_in_flight - 1)
                self._probe_successes += 1
                if self._probe_successes >= self.config.half_open_successes_to_close:
                    self._clear()
                    self._transition(BreakerState.CLOSED)
                return
            self._add(True, latency_s)

    def record_failure(self, latency_s: float) -> None:
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._probes_in_flight = max(0, self._probes_in_flight - 1)
                self.last_open_reason = "probe failed while half-open"
                self._open()
                return
            self._add(False, latency_s)

    def announce(self) -> None:
        """Tell the listener the current state, as both old and new (its first value)."""
        with self._lock:  # ordered with the transitions, so the last value heard is the state
            if self._listener is not None:
                self._listener(self.name, self._state, self._state)

    def window_stats(self) -> WindowStats:
        with self._lock:
            self._prune()
            return self._stats()

    def reset(self) -> None:
        """Close the circuit and forget the window (an operator action)."""
        with self._lock:
            self._clear()
            self._transition(BreakerState.CLOSED)

    # Internals; the caller holds the lock.
    def _add(self, ok: bool, latency_s: float) -> None:
        latency_ms = latency_s * 1000.0
        self._window.append((self._clock(), ok, latency_ms))
        self._errors += not ok
        self._slow += latency_ms > self.config.max_p95_latency_ms
        self._prune()
        n = len(self._window)
        if self._state is not BreakerState.CLOSED or n < self.config.min_requests:
            return
        if self._errors / n > self.config.max_error_rate:
            self.last_open_reason = (
                f"error rate {self._errors / n:.1%} > {self.config.max_error_rate:.1%} "
                f"over {n} requests"
            )
            self._open()
        elif self._slow > n - math.ceil(0.95 * n):  # the p95 call is slower than the threshold
            self.last_open_reason = (
                f"p95 latency {self._stats().p95_latency_ms:.0f} ms > "
                f"{self.config.max_p95_latency_ms:.0f} ms over {n} requests"
            )
            self._open()

    def _prune(self) -> None:
        horizon = self._clock() - self.config.window_s
        threshold = self.config.max_p95_latency_ms
        while self._window and self._window[0][0] <= horizon:
            _, ok, latency_ms = self._window.popleft()
            self._errors -= not ok
            self._slow -= latency_ms > threshold

    def _clear(self) -> None:
        self._window.clear()
        self._errors = self._slow = 0

    def _stats(self) -> WindowStats:
        n = len(self._window)
        if not n:
            return WindowStats(0, 0, 0.0, 0.0)
        latencies = sorted(lat for _, _, lat in self._window)
        p95 = latencies[min(n - 1, math.ceil(0.95 * n) - 1)]
        return WindowStats(n, self._errors, self._errors / n, p95)

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._transition(BreakerState.OPEN)

    def _maybe_half_open(self) -> None:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.config.cooldown_s
        ):
            self._transition(BreakerState.HALF_OPEN)

    def _transition(self, new: BreakerState) -> None:
        old = self._state
        self._state = new
        self._probes_in_flight = 0
        self._probe_successes = 0
        if old is not new and self._listener is not None:
            self._listener(self.name, old, new)


class CircuitBreakerRegistry:
    """One breaker per model, created on first use, with optional per-model settings.

    `on_state_change` hears every transition of every breaker, and the state of each breaker
    when it is created (as old and new), so a gauge fed by it shows every model in use without
    waiting for its first transition. It is the one listener: whoever builds the
    registry decides where its states go, however many routers share it.
    """

    def __init__(
        self,
        default: BreakerSettings | None = None,
        *,
        overrides: dict[str, BreakerSettings] | None = None,
        clock: Clock = time.monotonic,
        on_state_change: StateListener | None = None,
    ) -> None:
        self.default = default or BreakerSettings()
        self._overrides = dict(overrides or {})
        self._clock = clock
        self._listener = on_state_change
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, model: str) -> CircuitBreaker:
        breaker = self._breakers.get(model)  # the common case, without the lock
        if breaker is not None:
            return breaker
        with self._lock:
            breaker = self._breakers.get(model)
            created = breaker is None
            if breaker is None:
                breaker = self._breakers[model] = CircuitBreaker(
                    model,
                    self._overrides.get(model, self.default),
                    clock=self._clock,
                    on_state_change=self._listener,
                )
        if created:  # outside the registry's lock: a listener may call the registry
            breaker.announce()
        return breaker

    def states(self) -> dict[str, BreakerState]:
        """Current state by model (for metrics and health endpoints)."""
        with self._lock:
            breakers = list(self._breakers.values())
        return {b.name: b.state for b in breakers}
