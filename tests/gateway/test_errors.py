"""Every error status provoked through the wire: RFC 9457 problem details, no internals leaked."""

from __future__ import annotations

import asyncio
import json
import re

import httpx

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, *needles: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["trace_id"] == response.headers["x-trace-id"]
    for needle in needles:
        assert needle in body["detail"], body
    assert "Traceback" not in response.text and "/tmp" not in response.text
    assert "/work" not in response.text
    return body


def test_422_names_the_invalid_field(client, ask):
    body = assert_problem(
        client.post("/v1/chat/completions", json={"model": "grounded-qa", "messages": []}),
        422,
        "messages",
    )
    assert body["errors"][0]["loc"] == ["messages"]
    no_user = ask(user="u422")
    no_user["messages"] = [{"role": "system", "content": "be brief"}]
    assert_problem(client.post("/v1/chat/completions", json=no_user), 422, "messages", "user")
    assert_problem(
        client.post("/v1/chat/completions", json=ask("x" * 9000, user="u422")), 422, "input"
    )
    missing_tenant = httpx.post(
        f"{client.base_url}/v1/chat/completions", json=ask(user="u422"), timeout=30
    )
    assert_problem(missing_tenant, 422, "X-Tenant")


def test_404_for_unknown_agent_version_tenant_and_session(client, ask):
    assert_problem(
        client.post("/v1/chat/completions", json=ask(user="u404") | {"model": "no-such-agent"}),
        404,
        "no-such-agent",
    )
    assert_problem(client.get("/v1/agents/grounded-qa@challenger"), 404, "challenger")
    assert_problem(
        client.post("/v1/chat/completions", json=ask(user="u404"), headers={"X-Tenant": "ghost"}),
        404,
        "ghost",
    )
    assert_problem(client.get("/v1/sessions/nope", params={"user": "u404"}), 404, "nope")


def test_413_for_an_oversized_body(client, ask):
    body = ask("a" * 70_000, user="u413")
    assert_problem(client.post("/v1/chat/completions", json=body), 413, "bytes")


def test_429_with_retry_after_from_the_rate_limiter(client, ask, limits):
    statuses, allowed = [], limits["user_requests_per_minute"]
    for _ in range(allowed + 2):
        response = client.post("/v1/chat/completions", json=ask(user="greedy"))
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[:allowed] == [200] * allowed
    assert_problem(response, 429, "user limit")
    assert int(response.headers["retry-after"]) >= 1


def test_503_when_no_index_can_serve_the_tenant(client, ask):
    response = client.post(
        "/v1/chat/completions", json=ask(user="u503"), headers={"X-Tenant": "unindexed"}
    )
    assert_problem(response, 503, "no knowledge index")
    assert int(response.headers["retry-after"]) >= 1


def test_503_with_retry_after_when_the_worker_is_saturated(gateway, ask, limits):
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=gateway.url, headers={"X-Tenant": "handbook"}, timeout=60
        ) as client:
            return await asyncio.gather(
                *(
                    client.post("/v1/chat/completions", json=ask(user=f"burst-{n}"))
                    for n in range(limits["max_concurrent_requests"] * 8)
                )
            )

    responses = asyncio.run(burst())
    refused = [r for r in responses if r.status_code == 503]
    assert refused, "a burst of 8x the concurrency limit was never refused"
    assert {r.status_code for r in responses} == {200, 503}
    assert_problem(refused[0], 503, "concurrent requests")
    assert refused[0].headers["retry-after"] == "1"


def test_504_when_the_request_deadline_passes_and_the_request_is_recorded(client, ask, gateway):
    response = client.post(
        "/v1/chat/completions", json=ask(user="u504"), headers={"X-Request-Timeout": "0.0001"}
    )
    body = assert_problem(response, 504, "did not answer")
    log = (gateway.home / "runtime" / "requests.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in log if body["trace_id"] in line]
    assert [(r["user"], r["outcome"]) for r in records] == [("u504", "DeadlineExceeded")]
    metrics = client.get("/metrics").text  # counted where the alert rules look, too
    assert re.search(
        r'agent_platform_http_request_duration_seconds_count\{[^}]*route="/v1/chat/completions"'
        r'[^}]*status="504"[^}]*\} [1-9]',
        metrics,
    ), "no 504 in the HTTP metrics"
    counted = r'agent_platform_agent_requests_total\{[^}]*outcome="DeadlineExceeded"'
    assert re.search(counted, metrics), "the deadline is not in the agent request counter"


def test_unknown_routes_are_problems_too(client):
    assert_problem(client.get("/v1/nothing"), 404)
    assert_problem(client.get("/v1/chat/completions"), 405)
