"""arun, batch and abatch: concurrent requests, at most N model calls at once (measured at a real
local HTTP server that takes its time), results in input order."""
# The server's hang is wall-clock: keep these tests free of tight timing assumptions (2 cores).

from __future__ import annotations

import asyncio

from agent_platform.runtime.catalogue import ModelSpec, default_models
from agent_platform.runtime.config import RouteSettings
from agent_platform.runtime.errors import RequestValidationError

AGENT_TENANT = "handbook"
QUESTIONS = [
    "How many days do I have to request a refund?",
    "How long does standard shipping take?",
    "When is the support desk open?",
]


def test_arun_answers_like_run(make_runtime) -> None:
    runtime = make_runtime()
    response = asyncio.run(runtime.arun(tenant=AGENT_TENANT, user="kim", input=QUESTIONS[0]))
    assert "30 days" in response.answer and response.citations[0].source == "refunds.md"
    assert response.state_version == 1 and "execute_model.model_call" in response.latency_ms


def test_batch_runs_concurrently_with_at_most_ten_model_calls(make_runtime, fake_openai) -> None:
    fake_openai.script, fake_openai.hang_s = ["hang"], 0.8
    fake_openai.text = "See the sources [1]."
    spec = ModelSpec(
        name="slow-hosted",
        provider="openai",
        model="fake-gpt",
        base_url=fake_openai.base_url,
        api_key_env="FAKE_OPENAI_API_KEY",
        context_window=8192,
        params={"max_retries": 0, "timeout": 10},
    )
    runtime = make_runtime(
        models=[*default_models(), spec],
        routes={"default": RouteSettings(models=["slow-hosted"])},
    )
    requests = [
        {"tenant": AGENT_TENANT, "user": f"user-{i}", "input": QUESTIONS[i % 3]} for i in range(14)
    ]
    responses = runtime.batch(requests, max_concurrency=14)

    assert [r.model for r in responses] == ["slow-hosted"] * 14
    assert len({r.trace_id for r in responses}) == 14
    assert fake_openai.requests == 14
    assert runtime.services.model_slots.peak == 10  # 14 requests, 10 model slots
    # Concurrent, not serial: the server held several 0.8 s calls at once, and never more than
    # the slots (a slot is taken a little before the request goes out). No wall-clock bound: the
    # machine may be busy.
    assert 5 <= fake_openai.peak_in_flight <= 10


def test_batch_keeps_input_order_and_can_return_errors(make_runtime) -> None:
    runtime = make_runtime()
    requests = [
        {"tenant": AGENT_TENANT, "user": "lee", "input": QUESTIONS[1]},
        {"tenant": AGENT_TENANT, "user": "lee", "input": ""},
        {"tenant": AGENT_TENANT, "user": "lee", "input": QUESTIONS[2]},
    ]
    results = runtime.batch(requests, max_concurrency=2, return_exceptions=True)
    assert "business days" in results[0].answer
    assert isinstance(results[1], RequestValidationError) and results[1].field == "input"
    assert "Monday to Friday" in results[2].answer
