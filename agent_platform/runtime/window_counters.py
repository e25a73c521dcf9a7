"""In-process sliding-window counters for the `limits` library, without a thread per hit.

`limits`' own `MemoryStorage` expires keys from a `threading.Timer` that it starts again on
every hit once the last one has fired: a new thread per rate-limited call at serving rates, about
half of the router's own time in a profile. Here a key holds only its current and previous
window's counts (read by window number, so old counts need no timer to expire), one lock makes
test-and-increment atomic, and a sweep inside a write, at most once per `sweep_every_s`, drops
keys idle for two windows. Same arithmetic as `limits`' sliding window counter; the Redis storage
is unchanged and still the one that shares limits across processes.
"""

from __future__ import annotations

import math
import threading
import time

from limits.storage import Storage
from limits.storage.base import SlidingWindowCounterSupport


class LocalWindowStorage(Storage, SlidingWindowCounterSupport):
    """Sliding-window-counter storage for one process (`SlidingWindowCounterRateLimiter`)."""

    STORAGE_SCHEME = None  # built directly, never from a storage URI

    def __init__(self, sweep_every_s: float = 60.0) -> None:
        super().__init__(None)
        self._lock = threading.Lock()
        # key -> (expiry, window number, previous window's count, current window's count)
        self._windows: dict[str, tuple[int, int, int, int]] = {}
        self._counters: dict[str, tuple[float, int]] = {}  # fixed-window API: key -> (until, n)
        self._sweep_every_s = sweep_every_s
        self._next_sweep = time.time() + sweep_every_s

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    # --- sliding window counter (what the rate limiter uses) ---------------------------------
    def _counts(self, key: str, expiry: int, now: float) -> tuple[int, int, int]:
        window = int(now // expiry)
        _, seen, previous, current = self._windows.get(key, (expiry, window, 0, 0))
        if seen == window:
            return window, previous, current
        if seen == window - 1:
            return window, current, 0
        return window, 0, 0

    @staticmethod
    def _ttls(expiry: int, now: float, previous: int) -> tuple[float, float]:
        into = now % expiry
        return (expiry - into if previous else 0.0), 2 * expiry - into

    def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        if amount > limit:
            return False
        now = time.time()
        with self._lock:
            window, previous, current = self._counts(key, expiry, now)
            previous_ttl, _ = self._ttls(expiry, now, previous)
            if math.floor(previous * previous_ttl / expiry + current) + amount > limit:
                return False
            self._windows[key] = (expiry, window, previous, current + amount)
            if now >= self._next_sweep:
                self._sweep(now)
            return True

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        now = time.time()
        with self._lock:
            _, previous, current = self._counts(key, expiry, now)
        previous_ttl, current_ttl = self._ttls(expiry, now, previous)
        return previous, previous_ttl, current, current_ttl

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        with self._lock:
            self._windows.pop(key, None)

    def _sweep(self, now: float) -> None:
        """Drop keys whose counts no longer matter (caller holds the lock)."""
        self._windows = {k: v for k, v in self._windows.items() if v[1] >= int(now // v[0]) - 1}
        self._counters = {k: v for k, v in self._counters.items() if v[0] > now}
        self._next_sweep = now + self._sweep_every_s

    # --- the fixed-window API every `limits` storage implements ------------------------------
    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        with self._lock:
            until, count = self._counters.get(key, (0.0, 0))
            if until <= now:
                until, count = now + expiry, 0
            self._counters[key] = (until, count + amount)
            return count + amount

    def get(self, key: str) -> int:
        until, count = self._counters.get(key, (0.0, 0))
        return count if until > time.time() else 0

    def get_expiry(self, key: str) -> float:
        return self._counters.get(key, (time.time(), 0))[0]

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            removed = len(self._windows) + len(self._counters)
            self._windows.clear()
            self._counters.clear()
        return removed

    def clear(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)
            self._counters.pop(key, None)
