"""The verification stage's integration and performance checks, after the last traffic step: a
short, bounded burst of concurrent requests on green through the gateway (the OpenAI contract,
as users call it). `integration`: every answer came from green with content; `performance`: the
burst's p95 latency and error rate against the rollback thresholds (the spec's 500 ms and 1 %).

The same burst asks blue too, interleaved, as the baseline of the same instant: green fails on
latency only when it is over the limit *and* clearly slower than blue (`SLOWER_THAN_BLUE`), so a
busy machine that slows both versions alike does not roll back a healthy green; green's errors
fail it whatever blue does.

A burst of a few requests is a check that green still answers well under some concurrency, not a
load test: its numbers are recorded with the rollout; the live window decides the rest.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from agent_platform.delivery.preparation import FAILED, NOT_VERIFIED, PASSED, Check
from agent_platform.delivery.smoke import SMOKE_QUESTION

REQUESTS, CONCURRENCY, TIMEOUT_S, BUDGET_S = 20, 4, 10.0, 20.0
SLOWER_THAN_BLUE = 1.5  # green's p95 over the limit fails only beyond this multiple of blue's


@dataclass(frozen=True)
class Probe:
    status: int  # 0: no HTTP answer
    latency_ms: float
    version: str | None  # who answered
    content: bool  # the answer had text


def p95(latencies_ms: list[float]) -> float | None:
    """Nearest-rank 95th percentile (exact for a handful of samples, no interpolation)."""
    if not latencies_ms:
        return None
    ordered = sorted(latencies_ms)
    return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]


def verdict(
    probes: list[Probe],
    version: str,
    *,
    max_p95_ms: float,
    max_error_rate: float,
    baseline: list[Probe] | None = None,
) -> list[Check]:
    """The two checks from a burst's outcomes: any non-200 answer is an error (the probe's own
    requests are well-formed), and the p95 covers every request, failed ones included.
    `baseline`: blue's answers in the same burst, which excuse a p95 over the limit that blue
    shares."""
    if not probes:
        return [Check("performance", NOT_VERIFIED, "no requests were sent")]
    errors = [p for p in probes if p.status != 200]
    wrong = [p for p in probes if p.status == 200 and (p.version != version or not p.content)]
    if wrong:
        found = sorted({str(p.version) for p in wrong})
        detail = f"{len(wrong)} of {len(probes)} answers empty or not from v{version} ({found})"
        integration = Check("integration", FAILED, detail)
    else:
        ok = len(probes) - len(errors)
        integration = Check("integration", PASSED, f"{ok} of {len(probes)} answered by v{version}")
    rate, slowest = len(errors) / len(probes), p95([p.latency_ms for p in probes]) or 0.0
    blue = p95([p.latency_ms for p in baseline or []])
    numbers = (
        f"{len(probes)} requests: p95 {slowest:.0f} ms (limit {max_p95_ms:.0f} ms"
        + (f"; blue {blue:.0f} ms in the same burst" if blue is not None else "")
        + f"), errors {rate:.2%} (limit {max_error_rate:.2%})"
    )
    slow = slowest > max_p95_ms and (blue is None or slowest > SLOWER_THAN_BLUE * blue)
    over = rate > max_error_rate or slow
    return [integration, Check("performance", FAILED if over else PASSED, numbers)]


def probe(
    gateway_url: str,
    agent: str,
    version: str,
    tenant: str | None,
    *,
    baseline: str | None = None,
    max_p95_ms: float,
    max_error_rate: float,
    requests: int = REQUESTS,
    concurrency: int = CONCURRENCY,
    timeout_s: float = TIMEOUT_S,
    budget_s: float = BUDGET_S,
) -> list[Check]:
    """`requests` chat completions on `agent@version` (and as many on `agent@baseline`, blue,
    interleaved), `concurrency` at a time, each bounded by `timeout_s`, none started after
    `budget_s` (the Dagster sensor's tick must end); not verified without a tenant whose
    knowledge can answer."""
    if tenant is None:
        why = "no smoke tenant (set AGENT_PLATFORM_DELIVERY__SMOKE_TENANT)"
        return [
            Check("integration", NOT_VERIFIED, why),
            Check("performance", NOT_VERIFIED, why),
        ]
    url = gateway_url.rstrip("/")
    token = os.environ.get("AGENT_PLATFORM_TOKEN")
    headers = {"X-Tenant": tenant, **({"Authorization": f"Bearer {token}"} if token else {})}
    deadline = time.monotonic() + budget_s

    def one(client: httpx.Client, target: str) -> Probe | None:
        if time.monotonic() > deadline:
            return None
        body = {
            "model": f"{agent}@{target}",
            "messages": [{"role": "user", "content": SMOKE_QUESTION}],
            "user": "rollout-verification",
        }
        started = time.perf_counter()
        try:
            answer = client.post(f"{url}/v1/chat/completions", json=body)
        except httpx.HTTPError:
            return Probe(0, (time.perf_counter() - started) * 1000, None, False)
        latency = (time.perf_counter() - started) * 1000
        content = False
        if answer.status_code == 200:
            choices = answer.json().get("choices") or [{}]
            content = bool((choices[0].get("message") or {}).get("content"))
        return Probe(answer.status_code, latency, answer.headers.get("x-agent-version"), content)

    with (
        httpx.Client(headers=headers, timeout=timeout_s) as client,
        ThreadPoolExecutor(max_workers=concurrency) as pool,
    ):
        targets = [version, baseline] if baseline else [version]
        asked = [t for _ in range(requests) for t in targets]
        answers = list(pool.map(lambda target: one(client, target), asked))
    sent = {
        t: [p for a, p in zip(asked, answers, strict=True) if a == t and p is not None]
        for t in targets
    }
    return verdict(
        sent[version],
        version,
        max_p95_ms=max_p95_ms,
        max_error_rate=max_error_rate,
        baseline=sent[baseline] if baseline else None,
    )
