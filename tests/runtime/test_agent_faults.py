"""Faults through the whole workflow: a local OpenAI-compatible server that errors, hangs or
answers garbage, reached through the real ChatOpenAI; retry, fallback and the failure record."""

from __future__ import annotations

import json

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from agent_platform.runtime.catalogue import ModelSpec, default_models
from agent_platform.runtime.config import RetrySettings, RouteSettings
from agent_platform.runtime.errors import ModelsFailedError
from tests.runtime.conftest import hosted

AGENT_TENANT = "handbook"
QUESTION = "How many days do I have to request a refund?"


@pytest.fixture
def hosted_first(make_runtime, fake_openai):
    """A runtime whose route is hosted (the fake server) first, then the extractive model."""

    def make(route=("hosted", "extractive"), extra=(), **fields):
        return make_runtime(
            models=[*default_models(), hosted(fake_openai.base_url), *extra],
            routes={"default": RouteSettings(models=list(route))},
            **fields,
        )

    return make


def calls(runtime, model: str, outcome: str) -> float:
    labels = {"model": model, "tenant": AGENT_TENANT, "outcome": outcome}
    return runtime.telemetry.metrics.value("agent_platform_model_calls_total", labels) or 0.0


def test_a_healthy_hosted_model_answers_and_is_costed(hosted_first, fake_openai) -> None:
    fake_openai.text = "Refunds can be requested within 30 days of delivery [1]."
    runtime = hosted_first()
    response = runtime.run(tenant=AGENT_TENANT, user="ann", input=QUESTION)
    assert response.model == "hosted" and response.answer == fake_openai.text
    assert [c.source for c in response.citations] == ["refunds.md"]
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 3)
    assert response.cost == pytest.approx((11 * 0.5 + 3 * 1.5) / 1000)


def test_provider_500_is_retried_then_falls_back_to_extractive(hosted_first, fake_openai) -> None:
    fake_openai.script = ["500"]
    runtime = hosted_first()
    response = runtime.run(tenant=AGENT_TENANT, user="ann", input=QUESTION)
    assert response.model == "extractive" and "30 days" in response.answer
    assert fake_openai.requests == 3  # three tries of the hosted model, then the fallback
    assert calls(runtime, "hosted", "error") == 3 and calls(runtime, "extractive", "success") == 1


def test_provider_timeout_falls_back(hosted_first, fake_openai) -> None:
    fake_openai.script, fake_openai.hang_s = ["hang"], 2.0
    runtime = hosted_first(retry=RetrySettings(attempts=2, initial_delay_s=0.01, timeout_s=0.3))
    response = runtime.run(tenant=AGENT_TENANT, user="ann", input=QUESTION)
    assert response.model == "extractive"
    assert response.latency_ms["execute_model"] < 1500  # two 0.3 s timeouts, not two 2 s hangs


@pytest.mark.parametrize("behaviour", ["garbage", "empty"])
def test_garbage_from_the_provider_falls_back(hosted_first, fake_openai, behaviour) -> None:
    fake_openai.script = [behaviour]
    response = hosted_first().run(tenant=AGENT_TENANT, user="ann", input=QUESTION)
    assert response.model == "extractive" and response.citations


def test_an_answer_citing_unknown_sources_is_rejected_and_the_next_model_answers(
    hosted_first, fake_openai
) -> None:
    fake_openai.text = "Refunds take 30 days [7]."  # there is no source 7
    runtime = hosted_first()
    response = runtime.run(tenant=AGENT_TENANT, user="ann", input=QUESTION)
    assert fake_openai.requests == 1  # the answer arrived; validate_output rejected it
    assert response.model == "extractive"
    assert "[7]" not in response.answer and response.citations


def test_when_every_model_fails_the_caller_gets_a_clear_error_and_it_is_recorded(
    hosted_first, fake_openai
) -> None:
    fake_openai.script = ["500"]
    empty = ModelSpec(name="fake-empty", provider="fake", model="fake", context_window=8192)
    runtime = hosted_first(route=("hosted", "fake-empty"), extra=[empty])
    runtime.catalogue.register_model(
        "fake-empty", GenericFakeChatModel(messages=iter([AIMessage("")] * 3))
    )
    with pytest.raises(ModelsFailedError) as info:
        runtime.run(tenant=AGENT_TENANT, user="ann", input=QUESTION, session_id="s-fail")
    error = info.value
    message = str(error)
    assert "hosted: " in message and "Error code: 500" in message
    assert "fake-empty: GarbageResponseError: empty response" in message
    assert error.phase == "execute_model" and error.session_id == "s-fail"
    assert [a.model for a in error.attempts] == ["hosted"] * 3 + ["fake-empty"] * 3

    entries = runtime.services.working.entries(AGENT_TENANT, "ann", "s-fail")
    assert [e.key for e in entries] == [f"request:{error.trace_id}"]
    assert entries[0].value["status"] == "failed" and "fake-empty" in entries[0].value["error"]
    assert entries[0].value["prompt"]["name"] == "grounded_qa_system"
    logged = [r for r in runtime.request_log.read() if r["trace_id"] == error.trace_id]
    assert logged[0]["outcome"] == "ModelsFailedError" and logged[0]["phase"] == "execute_model"
    assert runtime.conversation("s-fail", tenant=AGENT_TENANT, user="ann").version == 0

    runtime.telemetry.provider.force_flush()
    path = runtime.settings.home_dir / "telemetry" / "traces.jsonl"
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    mine = [s for s in spans if s["context"]["trace_id"].removeprefix("0x") == error.trace_id]
    root = next(s for s in mine if s["name"] == "invoke_agent default-agent")
    assert root["status"]["status_code"] == "ERROR"
    assert root["attributes"]["agent_platform.outcome"] == "ModelsFailedError"
    assert sum(1 for s in mine if s["name"] == "chat fake-gpt") == 3


def test_a_global_rate_limit_refuses_with_retry_after_and_is_counted(make_runtime) -> None:
    from agent_platform.runtime.config import RateLimitSettings
    from agent_platform.runtime.rate_limit import RateLimitExceeded

    runtime = make_runtime(
        rate_limits=RateLimitSettings(
            global_requests_per_minute=2,
            user_tokens_per_minute=10**6,
            global_tokens_per_minute=10**7,
        )
    )
    for user in ("ann", "bob"):  # two users: only the global limit can refuse the third
        assert runtime.run(tenant=AGENT_TENANT, user=user, input=QUESTION).model == "extractive"
    with pytest.raises(RateLimitExceeded) as info:
        runtime.run(tenant=AGENT_TENANT, user="cyd", input=QUESTION, session_id="s-limited")
    error = info.value
    assert error.scope == "global" and error.limit == "2 requests/minute"
    assert 0 < error.retry_after_s <= 60 and "retry after" in str(error)
    metrics = runtime.telemetry.metrics
    assert metrics.value("agent_platform_rate_limit_refusals_total", {"scope": "global"}) == 1
    assert metrics.value("agent_platform_rate_limit_refusals_total", {"scope": "user"}) is None
    logged = [r for r in runtime.request_log.read() if r["outcome"] == "RateLimitExceeded"]
    assert [(r["user"], r["session_id"], r["phase"]) for r in logged] == [
        ("cyd", "s-limited", "execute_model")
    ]


@pytest.mark.redis
def test_with_redis_configured_the_limits_are_shared_by_runtimes(
    make_runtime, agent_home, redis_url, redis_prefix
) -> None:
    from limits.storage import RedisStorage

    from agent_platform.runtime.config import MemorySettings, RateLimitSettings
    from agent_platform.runtime.rate_limit import RateLimitExceeded
    from agent_platform.settings import Settings

    settings = Settings(home=agent_home, redis_url=redis_url)
    fields = {
        "rate_limits": RateLimitSettings(
            user_requests_per_minute=1,
            user_tokens_per_minute=10**6,
            global_tokens_per_minute=10**7,
            redis_key_prefix=f"{redis_prefix}:ratelimit",
        ),
        "memory": MemorySettings(redis_key_prefix=f"{redis_prefix}:stm"),
    }
    first, second = (
        make_runtime(settings=settings, **fields),
        make_runtime(settings=settings, **fields),
    )
    assert isinstance(first.services.router.rate_limiter.storage, RedisStorage)
    assert first.run(tenant=AGENT_TENANT, user="dee", input=QUESTION).model == "extractive"
    with pytest.raises(RateLimitExceeded) as info:  # another runtime, the same Redis counters
        second.run(tenant=AGENT_TENANT, user="dee", input=QUESTION)
    assert info.value.scope == "user" and info.value.key == "dee"
