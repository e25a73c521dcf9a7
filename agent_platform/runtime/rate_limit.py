"""Rate limits on requests and tokens per minute: globally, per user and per model.

Built on the `limits` library's sliding-window-counter strategy: O(1) state per key (two counters),
so a token limit of a million per minute costs no more than a request limit. The local backend keeps
counters in process memory (`LocalWindowStorage`: no timer thread per hit, unlike `limits`'
`MemoryStorage`); the Redis backend keeps them in Redis, updated by `limits`' Lua
scripts (atomic per key), so every process sharing the Redis shares the limits.

A call is admitted only if all its limits have room: they are tested first, then consumed. The
router admits a request's first model with `acquire` (global, user and model limits, all or
nothing) and each model it falls back to with `acquire_model` (that model's limits only), so a
request counts once globally and per user, once per model tried, and nowhere when every model's
own limit refuses it.
Two processes racing for the last unit can both pass the test; the loser's consumption then fails
and it is refused, with the units it already took left counted (the error is on the safe side).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import RedisStorage, Storage
from limits.strategies import SlidingWindowCounterRateLimiter

from agent_platform.runtime.config import RateLimitSettings
from agent_platform.runtime.window_counters import LocalWindowStorage

Scope = Literal["global", "user", "model"]
Kind = Literal["requests", "tokens"]
RefusalListener = Callable[["RateLimitExceeded"], None]


class RateLimitExceeded(Exception):  # noqa: N818 - the name the platform's API promises
    """A call refused by a limit; `retry_after_s` says when to try again."""

    def __init__(self, retry_after_s: float, scope: Scope, limit: str, key: str = "") -> None:
        self.retry_after_s = retry_after_s
        self.scope = scope
        self.limit = limit
        self.key = key
        super().__init__(
            f"rate limit exceeded: {scope} limit {limit}"
            + (f" for {key!r}" if key and scope != "global" else "")
            + f"; retry after {retry_after_s:.2f} s"
        )


@dataclass(frozen=True)
class _Limit:
    scope: Scope
    kind: Kind
    item: RateLimitItem
    identifiers: tuple[str, ...]

    @property
    def description(self) -> str:
        return f"{self.item.amount} {self.kind}/minute"


class RateLimiter:
    """Admits or refuses a call for (user, model, tokens) against all configured limits."""

    def __init__(
        self,
        config: RateLimitSettings | None = None,
        *,
        storage: Storage | None = None,
        namespace: str = "agent-platform",
        on_refusal: RefusalListener | None = None,
    ) -> None:
        self.config = config or RateLimitSettings()
        self.storage = storage or LocalWindowStorage()
        self.namespace = namespace
        self._strategy = SlidingWindowCounterRateLimiter(self.storage)
        self._on_refusal = on_refusal
        c = self.config
        self._items: dict[tuple[Scope, Kind], RateLimitItem] = {
            ("global", "requests"): RateLimitItemPerMinute(c.global_requests_per_minute),
            ("global", "tokens"): RateLimitItemPerMinute(c.global_tokens_per_minute),
            ("user", "requests"): RateLimitItemPerMinute(c.user_requests_per_minute),
            ("user", "tokens"): RateLimitItemPerMinute(c.user_tokens_per_minute),
            ("model", "requests"): RateLimitItemPerMinute(c.model_requests_per_minute),
            ("model", "tokens"): RateLimitItemPerMinute(c.model_tokens_per_minute),
        }

    @classmethod
    def local(cls, config: RateLimitSettings | None = None, **kwargs: object) -> RateLimiter:
        """Limits within this process only."""
        return cls(config, storage=LocalWindowStorage(), **kwargs)  # type: ignore[arg-type]

    @classmethod
    def redis(
        cls,
        url: str,
        config: RateLimitSettings | None = None,
        *,
        key_prefix: str = "agent-platform:ratelimit",
        **kwargs: object,
    ) -> RateLimiter:
        """Limits shared by every process that uses the same Redis and key prefix."""
        storage = RedisStorage(url, key_prefix=key_prefix, wrap_exceptions=True)
        return cls(config, storage=storage, **kwargs)  # type: ignore[arg-type]

    def _limits(
        self, user: str, model: str, scopes: tuple[Scope, ...] = ("global", "user", "model")
    ) -> list[_Limit]:
        ids: dict[Scope, tuple[str, ...]] = {
            "global": (self.namespace, "global"),
            "user": (self.namespace, "user", user),
            "model": (self.namespace, "model", model),
        }
        return [
            _Limit(scope, kind, item, (*ids[scope], kind))
            for (scope, kind), item in self._items.items()
            if scope in scopes
        ]

    def acquire(self, *, user: str, model: str, tokens: int = 0) -> None:
        """Count one request of `tokens` tokens in every scope, or raise `RateLimitExceeded`
        counting nothing."""
        _check_id("user", user)
        _check_id("model", model)
        self._acquire(self._limits(user, model), user, model, tokens)

    def acquire_model(self, *, model: str, tokens: int = 0) -> None:
        """Count one request against `model`'s limits only (a fallback of an admitted request),
        or raise `RateLimitExceeded` counting nothing."""
        _check_id("model", model)
        self._acquire(self._limits("", model, ("model",)), "", model, tokens)

    def _acquire(self, limits: list[_Limit], user: str, model: str, tokens: int) -> None:
        if tokens < 0:
            raise ValueError(f"tokens: must be >= 0, got {tokens}")
        checks = [(lim, 1 if lim.kind == "requests" else tokens) for lim in limits]
        checks = [(lim, cost) for lim, cost in checks if cost > 0]
        for lim, cost in checks:
            if cost > lim.item.amount or not self._strategy.test(
                lim.item, *lim.identifiers, cost=cost
            ):
                self._refuse(lim, user, model, cost)
        for lim, cost in checks:
            if not self._strategy.hit(lim.item, *lim.identifiers, cost=cost):
                self._refuse(lim, user, model, cost)

    def charge_tokens(self, *, user: str, model: str, tokens: int) -> bool:
        """Count tokens known only after the call (the output), without refusing anything.

        Returns False when a token limit had too little room to record them all; the next
        `acquire` is then refused by that limit anyway.
        """
        if tokens <= 0:
            return True
        charged = True
        for lim in self._limits(user, model):
            if lim.kind == "tokens":
                cost = min(tokens, lim.item.amount)
                charged = self._strategy.hit(lim.item, *lim.identifiers, cost=cost) and charged
        return charged

    def remaining(self, *, user: str, model: str) -> dict[str, int]:
        """Units left per limit, keyed `scope.kind` (for headers and dashboards)."""
        return {
            f"{lim.scope}.{lim.kind}": self._strategy.get_window_stats(
                lim.item, *lim.identifiers
            ).remaining
            for lim in self._limits(user, model)
        }

    def reset(self, *, user: str, model: str) -> None:
        """Forget the counters of these keys (tests and operator action)."""
        for lim in self._limits(user, model):
            self._strategy.clear(lim.item, *lim.identifiers)

    def _refuse(self, lim: _Limit, user: str, model: str, cost: int) -> None:
        if cost > lim.item.amount:
            retry_after = float("inf")
        else:
            stats = self._strategy.get_window_stats(lim.item, *lim.identifiers)
            retry_after = max(0.001, stats.reset_time - time.time())
        key = {"global": "", "user": user, "model": model}[lim.scope]
        error = RateLimitExceeded(retry_after, lim.scope, lim.description, key)
        if self._on_refusal is not None:
            self._on_refusal(error)
        raise error


def _check_id(field: str, value: str) -> None:
    if not value:
        what = "id" if field == "user" else "name"
        raise ValueError(f"{field}: must be a non-empty {what}")
