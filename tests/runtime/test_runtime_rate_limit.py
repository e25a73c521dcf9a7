"""Rate limits: local (in-process) and Redis (shared by separate limiter instances)."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from agent_platform.runtime.catalogue import ModelCatalogue, default_models
from agent_platform.runtime.config import RateLimitSettings, RetrySettings, RouteSettings
from agent_platform.runtime.rate_limit import RateLimiter, RateLimitExceeded
from agent_platform.runtime.router import AllModelsFailedError, Router
from agent_platform.runtime.sources import format_sources
from agent_platform.runtime.telemetry import RuntimeMetrics
from tests.runtime.conftest import hosted

SMALL = RateLimitSettings(
    user_requests_per_minute=3,
    user_tokens_per_minute=100,
    model_requests_per_minute=5,
    global_requests_per_minute=50,
)


def test_defaults_match_the_spec() -> None:
    c = RateLimitSettings()
    assert (c.global_requests_per_minute, c.global_tokens_per_minute) == (10_000, 1_000_000)
    assert (c.user_requests_per_minute, c.user_tokens_per_minute) == (100, 10_000)
    assert (c.model_requests_per_minute, c.model_tokens_per_minute) == (1_000, 100_000)


def test_local_user_request_limit_refuses_with_retry_after() -> None:
    metrics = RuntimeMetrics()
    limiter = RateLimiter.local(SMALL, on_refusal=lambda e: metrics.rate_limited(e.scope))
    for _ in range(3):
        limiter.acquire(user="alice", model="m", tokens=10)
    with pytest.raises(RateLimitExceeded) as info:
        limiter.acquire(user="alice", model="m", tokens=10)
    error = info.value
    assert error.scope == "user" and error.limit == "3 requests/minute" and error.key == "alice"
    assert 0 < error.retry_after_s <= 60
    assert "retry after" in str(error)
    limiter.acquire(user="bob", model="m", tokens=10)  # other users are unaffected
    assert metrics.value("agent_platform_rate_limit_refusals_total", {"scope": "user"}) == 1
    assert limiter.remaining(user="bob", model="m")["model.requests"] == 1


def test_token_limits_and_model_limits() -> None:
    limiter = RateLimiter.local(SMALL)
    limiter.acquire(user="alice", model="m", tokens=90)
    with pytest.raises(RateLimitExceeded, match="user limit 100 tokens/minute"):
        limiter.acquire(user="alice", model="m", tokens=20)
    for user in ("u1", "u2", "u3", "u4"):
        limiter.acquire(user=user, model="m")
    with pytest.raises(RateLimitExceeded) as info:
        limiter.acquire(user="u5", model="m")
    assert info.value.scope == "model" and info.value.key == "m"
    with pytest.raises(RateLimitExceeded) as too_big:
        limiter.acquire(user="u6", model="other", tokens=101)
    assert too_big.value.retry_after_s == float("inf")  # can never fit


def test_a_refused_call_consumes_nothing() -> None:
    limiter = RateLimiter.local(SMALL)
    limiter.acquire(user="alice", model="m", tokens=95)
    with pytest.raises(RateLimitExceeded):
        limiter.acquire(user="alice", model="m", tokens=50)
    assert limiter.remaining(user="alice", model="m")["model.requests"] == 4


def test_bad_arguments_name_the_field() -> None:
    limiter = RateLimiter.local()
    with pytest.raises(ValueError, match="user: must be a non-empty id"):
        limiter.acquire(user="", model="m")
    with pytest.raises(ValueError, match="tokens: must be >= 0"):
        limiter.acquire(user="u", model="m", tokens=-1)
    with pytest.raises(ValueError, match="user_requests_per_minute"):
        RateLimitSettings(user_requests_per_minute=0)


@pytest.mark.redis
def test_redis_limit_is_shared_by_two_limiters(redis_url: str, redis_prefix: str) -> None:
    first = RateLimiter.redis(redis_url, SMALL, key_prefix=redis_prefix)
    second = RateLimiter.redis(redis_url, SMALL, key_prefix=redis_prefix)
    first.acquire(user="alice", model="m", tokens=10)
    second.acquire(user="alice", model="m", tokens=10)
    first.acquire(user="alice", model="m", tokens=10)
    with pytest.raises(RateLimitExceeded) as info:
        second.acquire(user="alice", model="m", tokens=10)
    assert info.value.scope == "user" and 0 < info.value.retry_after_s <= 60
    assert first.remaining(user="alice", model="m")["user.tokens"] == 70
    # Another prefix is another limit space.
    other = RateLimiter.redis(redis_url, SMALL, key_prefix=f"{redis_prefix}-other")
    other.acquire(user="alice", model="m", tokens=10)


def test_output_tokens_are_charged_after_the_call() -> None:
    limiter = RateLimiter.local(SMALL)
    limiter.acquire(user="alice", model="m", tokens=10)
    assert limiter.charge_tokens(user="alice", model="m", tokens=80)
    with pytest.raises(RateLimitExceeded, match="user limit 100 tokens/minute"):
        limiter.acquire(user="alice", model="m", tokens=20)
    assert not limiter.charge_tokens(user="alice", model="m", tokens=50)  # no room left


def test_a_request_that_falls_back_counts_once_globally_and_per_user(fake_openai) -> None:
    fake_openai.script = ["500"]
    limiter = RateLimiter.local(RateLimitSettings())
    router = Router(
        ModelCatalogue([*default_models(), hosted(fake_openai.base_url)]),
        routes={"default": RouteSettings(models=["hosted", "extractive"])},
        retry=RetrySettings(attempts=3, initial_delay_s=0.01, max_delay_s=0.02),
        rate_limiter=limiter,
    )
    messages = [
        SystemMessage(format_sources([("a.md", "Refunds are accepted within 30 days.")])),
        HumanMessage("How many days for refunds?"),
    ]
    response = router.invoke(messages, user="alice")
    assert response.model == "extractive" and fake_openai.requests == 3

    c = RateLimitSettings()
    hosted_left = limiter.remaining(user="alice", model="hosted")
    assert hosted_left["global.requests"] == c.global_requests_per_minute - 1
    assert hosted_left["user.requests"] == c.user_requests_per_minute - 1
    assert hosted_left["model.requests"] == c.model_requests_per_minute - 1  # 3 tries, 1 request
    assert limiter.remaining(user="alice", model="extractive")["model.requests"] == (
        c.model_requests_per_minute - 1
    )
    # Tokens: the prompt once globally and per user, plus the answer's output tokens.
    used = response.input_tokens + response.output_tokens
    assert hosted_left["global.tokens"] == c.global_tokens_per_minute - used
    assert hosted_left["user.tokens"] == c.user_tokens_per_minute - used
    router.close()


def test_a_request_every_model_refuses_is_not_charged_to_the_user() -> None:
    """The global and user limits are taken with the first model admitted, all or nothing."""
    limits = RateLimitSettings(model_requests_per_minute=1, user_requests_per_minute=5)
    limiter = RateLimiter.local(limits)
    router = Router(
        ModelCatalogue(default_models()),
        routes={"default": RouteSettings(models=["extractive"])},
        rate_limiter=limiter,
    )
    question = [HumanMessage("How many days for refunds?")]
    router.invoke(question, user="alice")  # spends the model's one request
    for _ in range(3):
        with pytest.raises(AllModelsFailedError, match="model limit 1 requests/minute"):
            router.invoke(question, user="bob")
    left = limiter.remaining(user="bob", model="extractive")
    assert left["user.requests"] == limits.user_requests_per_minute
    assert left["user.tokens"] == limits.user_tokens_per_minute
    assert left["global.requests"] == limits.global_requests_per_minute - 1  # alice's only
    router.close()


def test_a_fallback_takes_only_the_next_model_s_limits() -> None:
    limiter = RateLimiter.local(SMALL)
    limiter.acquire(user="alice", model="m", tokens=10)  # the first model admitted
    limiter.acquire_model(model="n", tokens=10)  # the request falls back to n
    left = limiter.remaining(user="alice", model="n")
    assert (left["user.requests"], left["user.tokens"], left["model.requests"]) == (2, 90, 4)
    with pytest.raises(ValueError, match="model: must be a non-empty name"):
        limiter.acquire_model(model="")
    for _ in range(4):
        limiter.acquire_model(model="n")
    with pytest.raises(RateLimitExceeded) as info:
        limiter.acquire_model(model="n")
    assert info.value.scope == "model"
    assert limiter.remaining(user="alice", model="n")["user.requests"] == 2  # untouched by n's


def test_local_limits_start_no_thread_and_admit_exactly_the_limit() -> None:
    """The local storage needs no timer thread (limits' MemoryStorage starts one per hit), and
    its test-and-increment is atomic: 40 racing threads get exactly the 25 requests allowed."""
    import threading

    limiter = RateLimiter.local(RateLimitSettings(user_requests_per_minute=25))
    admitted: list[int] = []
    before = threading.active_count()
    start = threading.Barrier(40)

    def call(i: int) -> None:
        start.wait()
        try:
            limiter.acquire(user="alice", model="m")
            admitted.append(i)
        except RateLimitExceeded:
            pass

    workers = [threading.Thread(target=call, args=(i,)) for i in range(40)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(admitted) == 25
    assert limiter.remaining(user="alice", model="m")["user.requests"] == 0
    for user in ("u1", "u2", "u3"):
        limiter.acquire(user=user, model="m")
    assert threading.active_count() == before
