"""Router: retries with backoff, fallback along the route, timeouts, garbage, strategies, breakers
and limits — against a real local HTTP server speaking the OpenAI API, via langchain-openai."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from agent_platform.runtime.catalogue import Capability, ModelCatalogue, ModelSpec, default_models
from agent_platform.runtime.circuit_breaker import BreakerState, CircuitBreakerRegistry
from agent_platform.runtime.config import (
    BreakerSettings,
    RateLimitSettings,
    RetrySettings,
    RouteSettings,
)
from agent_platform.runtime.models.extractive import NO_ANSWER
from agent_platform.runtime.rate_limit import RateLimiter, RateLimitExceeded
from agent_platform.runtime.router import (
    AllModelsFailedError,
    NoCandidateModelsError,
    Router,
)
from agent_platform.runtime.sources import format_sources
from agent_platform.runtime.telemetry import Telemetry
from tests.runtime.conftest import hosted

FAST_RETRY = RetrySettings(attempts=3, initial_delay_s=0.01, max_delay_s=0.05, timeout_s=1.0)


def grounded_messages() -> list:
    sources = format_sources(
        [
            ("policy.md", "Refunds are accepted within 30 days of purchase. Items must be unused."),
            ("shipping.md", "Orders ship within 3 to 5 business days."),
        ]
    )
    return [
        SystemMessage(f"Answer from the sources and cite them.\n\n{sources}"),
        HumanMessage("How many days do I have to ask for a refund?"),
    ]


def make_router(specs: list[ModelSpec], route: list[str], **kwargs: object) -> Router:
    catalogue = ModelCatalogue([*default_models(), *specs])
    kwargs.setdefault("retry", FAST_RETRY)
    return Router(catalogue, routes={"default": RouteSettings(models=route)}, **kwargs)


def test_retries_a_failing_model_then_succeeds(fake_openai) -> None:
    fake_openai.script = ["500", "500", "ok"]
    delays: list[float] = []
    router = make_router([hosted(fake_openai.base_url)], ["hosted"], sleep=delays.append)
    response = router.invoke([HumanMessage("hello")])
    assert response.model == "hosted"
    assert response.text == "Hosted answer."
    assert [a.outcome for a in response.attempts] == ["error", "error", "success"]
    assert "Error code: 500" in (response.attempts[0].error or "")
    assert delays == pytest.approx([0.01, 0.02])  # exponential backoff x2
    assert fake_openai.requests == 3
    assert (response.input_tokens, response.output_tokens) == (11, 3)
    assert response.cost_usd == pytest.approx((11 * 0.5 + 3 * 1.5) / 1000)


def test_falls_back_to_the_next_model_after_retries(fake_openai) -> None:
    fake_openai.script = ["500"]
    router = make_router([hosted(fake_openai.base_url)], ["hosted", "extractive"])
    response = router.invoke(grounded_messages())
    assert response.model == "extractive"
    assert "30 days" in response.text and "[1]" in response.text
    outcomes = [(a.model, a.outcome) for a in response.attempts]
    assert outcomes == [("hosted", "error")] * 3 + [("extractive", "success")]
    assert fake_openai.requests == 3


def test_timeout_counts_as_failure_and_falls_back(fake_openai) -> None:
    fake_openai.script = ["hang"]
    fake_openai.hang_s = 3.0
    retry = RetrySettings(attempts=2, initial_delay_s=0.01, timeout_s=0.3)
    router = make_router([hosted(fake_openai.base_url)], ["hosted", "extractive"], retry=retry)
    response = router.invoke(grounded_messages())
    assert response.model == "extractive"
    errors = [a.error for a in response.attempts if a.outcome == "error"]
    assert len(errors) == 2 and all("ModelTimeoutError" in (e or "") for e in errors)
    assert all(a.latency_s < 1.5 for a in response.attempts)


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [("empty", "GarbageResponseError"), ("garbage", "Error")],
)
def test_garbage_responses_are_failures(fake_openai, behaviour: str, expected: str) -> None:
    fake_openai.script = [behaviour]
    router = make_router([hosted(fake_openai.base_url)], ["hosted", "extractive"])
    response = router.invoke(grounded_messages())
    assert response.model == "extractive"
    hosted_attempts = [a for a in response.attempts if a.model == "hosted"]
    assert len(hosted_attempts) == 3
    assert all(expected in (a.error or "") for a in hosted_attempts)


def test_client_errors_are_not_retried(fake_openai) -> None:
    fake_openai.script = ["401"]
    router = make_router([hosted(fake_openai.base_url)], ["hosted", "extractive"])
    response = router.invoke(grounded_messages())
    assert response.model == "extractive"
    assert fake_openai.requests == 1


def test_all_models_failing_gives_a_clear_error(fake_openai) -> None:
    fake_openai.script = ["500"]
    broken = GenericFakeChatModel(messages=iter([AIMessage(""), AIMessage(""), AIMessage("")]))
    specs = [
        hosted(fake_openai.base_url),
        ModelSpec(name="fake-empty", provider="fake", model="fake", context_window=4096),
    ]
    router = make_router(specs, ["hosted", "fake-empty"])
    router.catalogue.register_model("fake-empty", broken)
    with pytest.raises(AllModelsFailedError) as info:
        router.invoke([HumanMessage("hello")])
    message = str(info.value)
    assert "route 'default'" in message and "all 2 model(s) failed" in message
    assert "hosted: OpenAIAPIError: Error code: 500" in message and "(3 attempt(s))" in message
    assert "fake-empty: GarbageResponseError: empty response" in message
    assert len(info.value.attempts) == 6


def test_async_invoke_times_out_and_falls_back(fake_openai) -> None:
    fake_openai.script = ["hang", "ok"]
    fake_openai.hang_s = 2.0
    retry = RetrySettings(attempts=2, initial_delay_s=0.01, timeout_s=0.3)
    router = make_router([hosted(fake_openai.base_url)], ["hosted", "extractive"], retry=retry)
    response = asyncio.run(router.ainvoke([HumanMessage("hello")]))
    assert response.model == "hosted"
    assert [a.outcome for a in response.attempts] == ["error", "success"]


def test_open_circuit_skips_the_model(fake_openai) -> None:
    now = [0.0]
    telemetry = Telemetry.disabled()
    breakers = CircuitBreakerRegistry(
        BreakerSettings(min_requests=2, cooldown_s=30),
        clock=lambda: now[0],
        on_state_change=telemetry.metrics.on_breaker_change,
    )
    fake_openai.script = ["500"]
    retry = RetrySettings(attempts=1, initial_delay_s=0, timeout_s=2)
    router = make_router(
        [hosted(fake_openai.base_url)],
        ["hosted", "extractive"],
        breakers=breakers,
        retry=retry,
        telemetry=telemetry,
    )
    for _ in range(2):
        router.invoke(grounded_messages())
    assert breakers.get("hosted").state is BreakerState.OPEN
    assert (
        router.telemetry.metrics.value("agent_platform_circuit_breaker_state", {"model": "hosted"})
        == 2
    )
    response = router.invoke(grounded_messages())
    assert response.model == "extractive"
    assert response.attempts[0].outcome == "skipped"
    assert "circuit of 'hosted' is open" in (response.attempts[0].error or "")
    assert fake_openai.requests == 2  # not called while open
    now[0] = 31.0  # cool-down over: one probe goes through and closes the circuit
    fake_openai.script = ["ok"]
    assert router.invoke(grounded_messages()).model == "hosted"
    assert breakers.get("hosted").state is BreakerState.CLOSED


def test_breaker_gauge_shows_a_model_before_its_first_state_change() -> None:
    router = make_router([], ["extractive"])
    gauge = "agent_platform_circuit_breaker_state"
    assert router.telemetry.metrics.value(gauge, {"model": "extractive"}) is None
    router.invoke(grounded_messages())
    assert router.breakers.get("extractive").state is BreakerState.CLOSED
    assert router.telemetry.metrics.value(gauge, {"model": "extractive"}) == 0


def test_model_rate_limit_falls_back_user_limit_raises(fake_openai) -> None:
    limits = RateLimitSettings(model_requests_per_minute=1, user_requests_per_minute=2)
    limiter = RateLimiter.local(limits)
    router = make_router(
        [hosted(fake_openai.base_url)], ["hosted", "extractive"], rate_limiter=limiter
    )
    assert router.invoke(grounded_messages(), user="u1").model == "hosted"
    second = router.invoke(grounded_messages(), user="u1")
    assert second.model == "extractive"
    assert second.attempts[0].outcome == "skipped"
    assert "model limit 1 requests/minute for 'hosted'" in (second.attempts[0].error or "")
    with pytest.raises(RateLimitExceeded) as info:  # a user limit is not the model's fault
        router.invoke(grounded_messages(), user="u1")
    assert info.value.scope == "user" and 0 < info.value.retry_after_s <= 60
    global_left = limiter.remaining(user="u2", model="hosted")["global.requests"]
    with pytest.raises(AllModelsFailedError, match="model limit 1 requests/minute"):
        router.invoke(grounded_messages(), user="u2")  # every model's own limit is spent
    left = limiter.remaining(user="u2", model="hosted")  # a request that never ran costs nothing
    assert left["user.requests"] == 2 and left["global.requests"] == global_left
    assert left["user.tokens"] == limits.user_tokens_per_minute


def test_strategies_order_the_fallback_chain() -> None:
    specs = [
        ModelSpec(
            name="cheap-slow",
            provider="openai",
            model="a",
            context_window=8192,
            input_price_per_1k=0.1,
            output_price_per_1k=0.1,
            quality_prior=0.5,
            latency_prior_ms=2000,
        ),
        ModelSpec(
            name="pricey-fast",
            provider="openai",
            model="b",
            context_window=8192,
            input_price_per_1k=5,
            output_price_per_1k=15,
            quality_prior=0.95,
            latency_prior_ms=200,
        ),
        ModelSpec(
            name="mid",
            provider="openai",
            model="c",
            context_window=2048,
            input_price_per_1k=1,
            output_price_per_1k=2,
            quality_prior=0.7,
            latency_prior_ms=600,
        ),
    ]
    router = Router(ModelCatalogue(specs))
    names = ["cheap-slow", "pricey-fast", "mid"]

    def order(strategy: str, **kwargs: object) -> list[str]:
        return [s.name for s in router.rank(names, strategy, **kwargs)]  # type: ignore[arg-type]

    assert order("ordered") == names
    assert order("cost") == ["cheap-slow", "mid", "pricey-fast"]
    assert order("latency") == ["pricey-fast", "mid", "cheap-slow"]
    assert order("quality")[0] == "pricey-fast"
    assert order("cost", prompt_tokens=4000) == ["cheap-slow", "pricey-fast"]  # mid too small
    # Intelligent: measured performance overrides priors. pricey-fast starts failing.
    before = order("intelligent")
    assert before.index("pricey-fast") < before.index("cheap-slow")
    for _ in range(10):
        router.performance.record_failure("pricey-fast", 0.2)
    router.performance.record_quality("cheap-slow", 0.9)
    after = order("intelligent")
    assert after.index("cheap-slow") < after.index("pricey-fast")
    assert after[-1] == "pricey-fast"
    with pytest.raises(ValueError, match="strategy: unknown routing strategy 'fastest'"):
        order("fastest")
    with pytest.raises(NoCandidateModelsError, match="tool_calling"):
        order("ordered", required=[Capability.TOOL_CALLING])


def test_bad_input_is_refused_clearly() -> None:
    router = make_router([], ["extractive"])
    with pytest.raises(ValueError, match="messages: at least one message"):
        router.invoke([])
    with pytest.raises(ValueError, match="route: unknown route 'nope'"):
        router.invoke([HumanMessage("q")], route="nope")
    with pytest.raises(ValueError, match=r"routes.default.models: unknown model 'ghost'"):
        Router(
            ModelCatalogue(default_models()), routes={"default": RouteSettings(models=["ghost"])}
        )


def test_extractive_says_it_does_not_know_without_support() -> None:
    router = make_router([], ["extractive"])
    response = router.invoke([HumanMessage("What is the boiling point of mercury?")])
    assert response.text == NO_ANSWER
