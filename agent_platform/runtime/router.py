"""Choose a model per request, retry it, and fall back along the route when it keeps failing.

A route names its candidate models; a strategy orders them, and that order is the fallback chain:

* `ordered`: as listed in the route.
* `cost`: cheapest expected call first: the catalogue prices x this prompt's tokens and the
  model's measured average output tokens (EMA; before its first answer, a default).
* `latency`: fastest first (measured latency EMA, else the catalogue's prior).
* `quality`: 0.7 x quality + 0.15 x cheapness + 0.15 x speed (quality measured when scored, else
  the catalogue's prior).
* `intelligent`: weighted utility of measured quality, reliability (1 - error-rate EMA), cheapness
  and speed (`IntelligentWeights`); models whose circuit is not closed go last.

Each model gets up to `retry.attempts` tries with exponential backoff (tenacity), each limited to
`retry.timeout_s`. Empty or non-text answers count as failures. Client errors that retrying cannot
fix (4xx other than 408/409/429) skip the remaining tries and go to the next model.
A model whose circuit is open, or whose per-model rate limit is spent, is skipped. User and global
rate limits are not the model's fault: they are raised to the caller at once. A request counts once
against the global and user limits, when its first model is admitted (not at all if every model's
own limit refuses it), and once against the limits of each model it tries.

Calls of hosted models run in a thread pool per model (a bulkhead: a hung provider holds threads of
its own pool only), as large as the number of concurrent model calls allowed, so calls do not queue
and the timeout measures the provider. Embedded models that only compute (`runs_inline`, e.g. the
extractive answerer) run in the caller's thread, with no timeout: they cannot hang.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, ConfigDict, Field
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from agent_platform.runtime.catalogue import Capability, ModelCatalogue, ModelSpec
from agent_platform.runtime.circuit_breaker import BreakerState, CircuitBreakerRegistry
from agent_platform.runtime.config import (
    BreakerSettings,
    RetrySettings,
    RouteSettings,
    RoutingStrategy,
    RuntimeSettings,
)
from agent_platform.runtime.performance import PerformanceTracker
from agent_platform.runtime.rate_limit import RateLimiter, RateLimitExceeded
from agent_platform.runtime.telemetry import Telemetry, record_error, record_usage
from agent_platform.runtime.tokens import count_message_tokens, count_tokens, message_text

DEFAULT_EXPECTED_OUTPUT_TOKENS = 256


class ModelCallError(RuntimeError):
    """A model call that the router counts as failed."""


class GarbageResponseError(ModelCallError):
    """The model answered, but with nothing usable (empty, or not text)."""


class ModelTimeoutError(ModelCallError):
    """The model did not answer within the call timeout."""


class CircuitOpenError(ModelCallError):
    """The model's circuit is open; it was not called."""


@dataclass(frozen=True)
class AttemptRecord:
    """One try (or skip) of one model."""

    model: str
    attempt: int
    outcome: Literal["success", "error", "skipped"]
    latency_s: float = 0.0
    error: str | None = None


class AllModelsFailedError(RuntimeError):
    """Every model of the route failed or was skipped; `attempts` tells what happened to each."""

    def __init__(self, route: str, attempts: Sequence[AttemptRecord]) -> None:
        self.route = route
        self.attempts = list(attempts)
        last: dict[str, AttemptRecord] = {}
        tries: dict[str, int] = {}
        for record in self.attempts:
            last[record.model] = record
            if record.outcome != "skipped":
                tries[record.model] = tries.get(record.model, 0) + 1
        details = "; ".join(
            f"{model}: {rec.error} ({tries.get(model, 0)} attempt(s))"
            for model, rec in last.items()
        )
        super().__init__(
            f"route {route!r}: all {len(last)} model(s) failed — {details or 'no candidate models'}"
        )


class NoCandidateModelsError(ValueError):
    """No model of the route has the required capabilities and a large enough context window."""


@dataclass(frozen=True)
class RoutedResponse:
    """The answer, which model gave it, and what it cost."""

    message: AIMessage
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_s: float
    attempts: list[AttemptRecord] = field(default_factory=list)

    @property
    def text(self) -> str:
        return message_text(self.message)


@dataclass
class _Request:
    """What every attempt of one routed call shares."""

    messages: list[BaseMessage]
    tenant: str
    user: str
    prompt_tokens: int
    model_kwargs: dict[str, Any]
    attempts: list[AttemptRecord] = field(default_factory=list)
    admitted: bool = False  # counted against the global and user limits


class IntelligentWeights(BaseModel):
    """Weights of the intelligent strategy's utility (normalised to sum to 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quality: float = Field(default=0.35, ge=0)
    reliability: float = Field(default=0.35, ge=0)
    cost: float = Field(default=0.15, ge=0)
    latency: float = Field(default=0.15, ge=0)


def validate_response(message: Any) -> AIMessage:
    """The message if it is a usable answer, else `GarbageResponseError`."""
    if not isinstance(message, AIMessage):
        raise GarbageResponseError(f"expected an AIMessage, got {type(message).__name__}")
    if message.tool_calls:
        return message
    content = message.content
    if isinstance(content, list) and any(
        not (isinstance(b, str) or (isinstance(b, dict) and b.get("type") in {"text", "reasoning"}))
        for b in content
    ):
        raise GarbageResponseError("response content has non-text blocks")
    if not isinstance(content, str | list):
        raise GarbageResponseError(f"response content is {type(content).__name__}, not text")
    if not message_text(message).strip():
        raise GarbageResponseError("empty response")
    return message


def _status_code(error: BaseException) -> int | None:
    for candidate in (error, getattr(error, "response", None)):
        code = getattr(candidate, "status_code", None)
        if isinstance(code, int):
            return code
    return None


def is_retryable(error: BaseException) -> bool:
    """Whether trying the same model again could help."""
    if isinstance(error, CircuitOpenError | RateLimitExceeded):
        return False
    code = _status_code(error)
    return not (code is not None and 400 <= code < 500 and code not in {408, 409, 429})


def _describe(error: BaseException) -> str:
    text = str(error).strip().replace("\n", " ")
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


class Router:
    """Routes chat calls across the catalogue with retries, fallbacks, breakers and limits."""

    def __init__(
        self,
        catalogue: ModelCatalogue,
        *,
        routes: dict[str, RouteSettings] | None = None,
        retry: RetrySettings | None = None,
        breakers: CircuitBreakerRegistry | None = None,
        performance: PerformanceTracker | None = None,
        rate_limiter: RateLimiter | None = None,
        telemetry: Telemetry | None = None,
        weights: IntelligentWeights | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_workers: int = 10,
    ) -> None:
        """`max_workers`: threads per hosted model; at least the concurrent model calls allowed,
        or calls queue and the queueing counts against `retry.timeout_s`. `breakers`: the one
        given reports its states where its builder said (`on_state_change`); the one made here
        feeds `telemetry`'s breaker gauge."""
        if max_workers < 1:
            raise ValueError(f"max_workers: must be >= 1, got {max_workers}")
        self.catalogue = catalogue
        self.routes = dict(routes or {"default": RouteSettings(models=catalogue.names)})
        for name, route in self.routes.items():
            for model in route.models:
                if model not in catalogue:
                    raise ValueError(f"routes.{name}.models: unknown model {model!r}")
        self.retry = retry or RetrySettings()
        self.telemetry = telemetry or Telemetry.disabled()
        self.breakers = breakers or CircuitBreakerRegistry(
            on_state_change=self.telemetry.metrics.on_breaker_change
        )
        self.performance = performance or PerformanceTracker()
        self.rate_limiter = rate_limiter
        self.weights = weights or IntelligentWeights()
        self._sleep = sleep
        self._retrying = _retrying_kwargs(self.retry)  # tenacity's policies are stateless
        self._max_workers = max_workers
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._pools_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        runtime: RuntimeSettings,
        catalogue: ModelCatalogue,
        *,
        rate_limiter: RateLimiter | None = None,
        telemetry: Telemetry | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_concurrent_calls: int = 10,
    ) -> Router:
        """Routes, retries and breaker thresholds (per-model latency overrides) from settings;
        `max_concurrent_calls` sizes the model-call thread pools."""
        telemetry = telemetry or Telemetry.disabled()
        overrides = {
            spec.name: BreakerSettings(
                **{**runtime.breaker.model_dump(), "max_p95_latency_ms": spec.max_p95_latency_ms}
            )
            for spec in catalogue
            if spec.max_p95_latency_ms is not None
        }
        breakers = CircuitBreakerRegistry(
            runtime.breaker,
            overrides=overrides,
            clock=clock,
            on_state_change=telemetry.metrics.on_breaker_change,
        )
        return cls(
            catalogue,
            routes=runtime.routes,
            retry=runtime.retry,
            breakers=breakers,
            rate_limiter=rate_limiter,
            telemetry=telemetry,
            max_workers=max_concurrent_calls,
        )

    def close(self) -> None:
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)

    def _pool(self, model: str) -> ThreadPoolExecutor:
        pool = self._pools.get(model)
        if pool is None:
            with self._pools_lock:
                pool = self._pools.get(model)
                if pool is None:
                    pool = self._pools[model] = ThreadPoolExecutor(
                        max_workers=self._max_workers, thread_name_prefix=f"model-call-{model}"
                    )
        return pool

    # Ranking
    def rank(
        self,
        models: Iterable[str],
        strategy: RoutingStrategy = "ordered",
        *,
        required: Iterable[Capability] = (),
        prompt_tokens: int = 0,
    ) -> list[ModelSpec]:
        """Candidate specs in fallback order, filtered by capability and context window."""
        needed = set(required)
        specs = [self.catalogue.get(m) for m in models]
        candidates = [
            s for s in specs if needed <= s.capabilities and s.context_window >= prompt_tokens + 1
        ]
        if not candidates:
            raise NoCandidateModelsError(
                f"no model among {[s.name for s in specs]} has capabilities "
                f"{sorted(needed)} and a context window over {prompt_tokens} tokens"
            )
        if strategy == "ordered":
            return candidates
        cost = {s.name: self._expected_cost(s, prompt_tokens) for s in candidates}
        latency = {s.name: self._expected_latency_ms(s) for s in candidates}
        if strategy == "cost":
            return sorted(candidates, key=lambda s: (cost[s.name], -self._quality(s)))
        if strategy == "latency":
            return sorted(candidates, key=lambda s: (latency[s.name], cost[s.name]))
        cheap = _inverse_normalised(cost)
        fast = _inverse_normalised(latency)
        if strategy == "quality":
            score = {
                s.name: 0.7 * self._quality(s) + 0.15 * cheap[s.name] + 0.15 * fast[s.name]
                for s in candidates
            }
            return sorted(candidates, key=lambda s: -score[s.name])
        if strategy == "intelligent":
            w = self.weights
            total = (w.quality + w.reliability + w.cost + w.latency) or 1.0
            score = {}
            for s in candidates:
                error_rate = self.performance.get(s.name).error_rate or 0.0
                score[s.name] = (
                    w.quality * self._quality(s)
                    + w.reliability * (1.0 - error_rate)
                    + w.cost * cheap[s.name]
                    + w.latency * fast[s.name]
                ) / total
            states = {s.name: self.breakers.get(s.name).state for s in candidates}
            return sorted(
                candidates,
                key=lambda s: (states[s.name] is not BreakerState.CLOSED, -score[s.name]),
            )
        raise ValueError(
            f"strategy: unknown routing strategy {strategy!r} "
            "(ordered, cost, latency, quality, intelligent)"
        )

    def _quality(self, spec: ModelSpec) -> float:
        perf = self.performance.get(spec.name)
        return perf.quality if perf.quality is not None else spec.quality_prior

    def _expected_latency_ms(self, spec: ModelSpec) -> float:
        perf = self.performance.get(spec.name)
        return perf.latency_ms if perf.latency_ms is not None else spec.latency_prior_ms

    def _expected_cost(self, spec: ModelSpec, prompt_tokens: int) -> float:
        """USD of this call at the catalogue prices: this prompt, and the model's measured average
        output (EMA) once it has answered, else `DEFAULT_EXPECTED_OUTPUT_TOKENS`. Input and output
        tokens are priced apart, so a long prompt is not billed at the output price."""
        measured = self.performance.get(spec.name).output_tokens
        output_tokens = DEFAULT_EXPECTED_OUTPUT_TOKENS if measured is None else round(measured)
        return spec.cost(prompt_tokens, output_tokens)

    def _plan(
        self,
        messages: Sequence[BaseMessage],
        route: str,
        models: Sequence[str] | None,
        strategy: RoutingStrategy | None,
        required: Iterable[Capability],
    ) -> tuple[list[ModelSpec], int]:
        if not messages:
            raise ValueError("messages: at least one message is required")
        if models is None:
            if route not in self.routes:
                raise ValueError(f"route: unknown route {route!r} (known: {sorted(self.routes)})")
            models = self.routes[route].models
            strategy = strategy or self.routes[route].strategy
        prompt_tokens = count_message_tokens(messages)
        ranked = self.rank(
            models, strategy or "ordered", required=required, prompt_tokens=prompt_tokens
        )
        return ranked, prompt_tokens

    def _admit_model(self, spec: ModelSpec, req: _Request) -> bool:
        """Whether the limits let the request try this model. The first model admitted takes the
        global and user limits too, all or nothing, so a request counts once there, and not at
        all when every model's own limit refuses it. A global or user refusal is raised."""
        if self.rate_limiter is None:
            return True
        try:
            if req.admitted:
                self.rate_limiter.acquire_model(model=spec.name, tokens=req.prompt_tokens)
            else:
                self.rate_limiter.acquire(user=req.user, model=spec.name, tokens=req.prompt_tokens)
        except RateLimitExceeded as exc:
            if exc.scope != "model":
                raise
            req.attempts.append(AttemptRecord(spec.name, 0, "skipped", error=_describe(exc)))
            return False
        req.admitted = True
        return True

    def _check_breaker(self, spec: ModelSpec) -> None:
        breaker = self.breakers.get(spec.name)
        if not breaker.allow():
            raise CircuitOpenError(
                f"circuit of {spec.name!r} is {breaker.state.value}"
                + (f" ({breaker.last_open_reason})" if breaker.last_open_reason else "")
                + f"; retry in {breaker.retry_after_s():.1f} s"
            )

    def _success(
        self, spec: ModelSpec, raw: Any, latency: float, span: Any, n: int, req: _Request
    ) -> RoutedResponse:
        try:
            message = validate_response(raw)
        except GarbageResponseError as exc:
            self._failure(spec, exc, latency, span, n, req)
            raise
        usage: dict[str, Any] = dict(message.usage_metadata or {})
        input_tokens = int(usage.get("input_tokens") or req.prompt_tokens)
        output_tokens = int(usage.get("output_tokens") or count_tokens(message_text(message)))
        cost = spec.cost(input_tokens, output_tokens)
        if self.rate_limiter is not None:  # input tokens were counted on admission
            self.rate_limiter.charge_tokens(user=req.user, model=spec.name, tokens=output_tokens)
        self.breakers.get(spec.name).record_success(latency)
        self.performance.record_success(spec.name, latency, output_tokens)
        self.telemetry.metrics.observe_call(
            model=spec.name,
            tenant=req.tenant,
            latency_s=latency,
            ok=True,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
        )
        record_usage(
            span,
            response_model=str(message.response_metadata.get("model_name") or spec.model),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        req.attempts.append(AttemptRecord(spec.name, n, "success", latency))
        return RoutedResponse(
            message, spec.name, input_tokens, output_tokens, cost, latency, list(req.attempts)
        )

    def _failure(
        self,
        spec: ModelSpec,
        error: BaseException,
        latency: float,
        span: Any,
        n: int,
        req: _Request,
    ) -> None:
        self.breakers.get(spec.name).record_failure(latency)
        self.performance.record_failure(spec.name, latency)
        self.telemetry.metrics.observe_call(
            model=spec.name, tenant=req.tenant, latency_s=latency, ok=False
        )
        record_error(span, error)
        req.attempts.append(AttemptRecord(spec.name, n, "error", latency, _describe(error)))

    # Calling
    def invoke(
        self,
        messages: Sequence[BaseMessage],
        *,
        route: str = "default",
        models: Sequence[str] | None = None,
        strategy: RoutingStrategy | None = None,
        tenant: str = "default",
        user: str = "anonymous",
        required: Iterable[Capability] = (),
        **model_kwargs: Any,
    ) -> RoutedResponse:
        """Answer `messages` with the first model of the route that succeeds.

        Raises `AllModelsFailedError` (every model failed or was skipped), `RateLimitExceeded`
        (a user or global limit), or `ValueError` for bad arguments. `model_kwargs` go to the
        model's `invoke` (e.g. `temperature`, `max_tokens`).
        """
        ranked, prompt_tokens = self._plan(messages, route, models, strategy, required)
        req = _Request(list(messages), tenant, user, prompt_tokens, dict(model_kwargs))
        for spec in ranked:
            if not self._admit_model(spec, req):
                continue
            try:
                for attempt in Retrying(sleep=self._sleep, **self._retrying):
                    with attempt:
                        return self._call_sync(spec, attempt.retry_state.attempt_number, req)
            except CircuitOpenError as exc:
                req.attempts.append(AttemptRecord(spec.name, 0, "skipped", error=_describe(exc)))
            except Exception:  # nosec B112  # recorded in attempts; fall back to the next model
                continue
        raise AllModelsFailedError(route if models is None else "<explicit>", req.attempts)

    def _call_sync(self, spec: ModelSpec, n: int, req: _Request) -> RoutedResponse:
        self._check_breaker(spec)
        with self.telemetry.model_call(
            spec, tenant=req.tenant, attempt=n, **req.model_kwargs
        ) as span:
            started = time.perf_counter()
            try:
                model = self.catalogue.chat_model(spec.name)
                if runs_inline(model):
                    raw = model.invoke(req.messages, **req.model_kwargs)
                else:
                    future = self._pool(spec.name).submit(
                        model.invoke, req.messages, **req.model_kwargs
                    )
                    try:
                        raw = future.result(timeout=self.retry.timeout_s)
                    except FutureTimeout:
                        future.cancel()  # a call already running keeps its thread until it returns
                        raise ModelTimeoutError(
                            f"{spec.name!r} did not answer within {self.retry.timeout_s} s"
                        ) from None
            except Exception as exc:
                self._failure(spec, exc, time.perf_counter() - started, span, n, req)
                raise
            return self._success(spec, raw, time.perf_counter() - started, span, n, req)

    async def ainvoke(
        self,
        messages: Sequence[BaseMessage],
        *,
        route: str = "default",
        models: Sequence[str] | None = None,
        strategy: RoutingStrategy | None = None,
        tenant: str = "default",
        user: str = "anonymous",
        required: Iterable[Capability] = (),
        **model_kwargs: Any,
    ) -> RoutedResponse:
        """`invoke` for asyncio: timeouts cancel the call instead of abandoning a thread."""
        ranked, prompt_tokens = self._plan(messages, route, models, strategy, required)
        req = _Request(list(messages), tenant, user, prompt_tokens, dict(model_kwargs))
        for spec in ranked:
            if not self._admit_model(spec, req):
                continue
            try:
                async for attempt in AsyncRetrying(**self._retrying):
                    with attempt:
                        return await self._call_async(spec, attempt.retry_state.attempt_number, req)
            except CircuitOpenError as exc:
                req.attempts.append(AttemptRecord(spec.name, 0, "skipped", error=_describe(exc)))
            except Exception:  # nosec B112  # the failure is recorded in the attempts; the next model is tried
                continue
        raise AllModelsFailedError(route if models is None else "<explicit>", req.attempts)

    async def _call_async(self, spec: ModelSpec, n: int, req: _Request) -> RoutedResponse:
        self._check_breaker(spec)
        with self.telemetry.model_call(
            spec, tenant=req.tenant, attempt=n, **req.model_kwargs
        ) as span:
            started = time.perf_counter()
            try:
                model: BaseChatModel = self.catalogue.chat_model(spec.name)
                if runs_inline(model):  # microseconds of CPU: cheaper than an executor hop
                    raw = model.invoke(req.messages, **req.model_kwargs)
                else:
                    try:
                        raw = await asyncio.wait_for(
                            model.ainvoke(req.messages, **req.model_kwargs), self.retry.timeout_s
                        )
                    except TimeoutError:
                        raise ModelTimeoutError(
                            f"{spec.name!r} did not answer within {self.retry.timeout_s} s"
                        ) from None
            except Exception as exc:
                self._failure(spec, exc, time.perf_counter() - started, span, n, req)
                raise
            return self._success(spec, raw, time.perf_counter() - started, span, n, req)


def runs_inline(model: BaseChatModel) -> bool:
    """Whether the model declares its calls pure, bounded computation (`runs_inline = True`)."""
    return getattr(model, "runs_inline", False) is True


def _retrying_kwargs(retry: RetrySettings) -> dict[str, Any]:
    return {
        "stop": stop_after_attempt(retry.attempts),
        "wait": wait_exponential(
            multiplier=retry.initial_delay_s, exp_base=retry.multiplier, max=retry.max_delay_s
        ),
        "retry": retry_if_exception(is_retryable),
        "reraise": True,
    }


def _inverse_normalised(values: dict[str, float]) -> dict[str, float]:
    """1 for the smallest value, 0 for the largest (all 1 when equal)."""
    low, high = min(values.values()), max(values.values())
    if high <= low:
        return dict.fromkeys(values, 1.0)
    return {k: (high - v) / (high - low) for k, v in values.items()}
