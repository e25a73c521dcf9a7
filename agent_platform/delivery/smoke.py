"""Health check and smoke test of green through the gateway, before traffic reaches it and
around the last step: the gateway loads green on the first request (no restart), so a passing
smoke test also means green is warm when its first users arrive."""

from __future__ import annotations

import os

import httpx

from agent_platform.delivery.preparation import FAILED, NOT_VERIFIED, PASSED, Check

SMOKE_QUESTION = "What does this knowledge base say about support?"


def smoke(gateway_url: str, agent: str, version: str, tenant: str | None) -> list[Check]:
    """/readyz, then one run on `agent@version`; failures name the status and the problem."""
    url = gateway_url.rstrip("/")
    token = os.environ.get("AGENT_PLATFORM_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        ready = httpx.get(f"{url}/readyz", timeout=10)
    except httpx.HTTPError as exc:
        return [Check("health", FAILED, f"gateway at {url} unreachable: {type(exc).__name__}")]
    if ready.status_code != 200:
        return [Check("health", FAILED, f"/readyz answered {ready.status_code}")]
    checks = [Check("health", PASSED, f"/readyz ok at {url}")]
    if tenant is None:
        why = "no smoke tenant (set AGENT_PLATFORM_DELIVERY__SMOKE_TENANT)"
        return [*checks, Check("smoke", NOT_VERIFIED, why)]
    body = {
        "model": f"{agent}@{version}",
        "messages": [{"role": "user", "content": SMOKE_QUESTION}],
        "user": "rollout-smoke",
    }
    try:
        answer = httpx.post(
            f"{url}/v1/chat/completions",
            json=body,
            headers={**headers, "X-Tenant": tenant},
            timeout=60,
        )
    except httpx.HTTPError as exc:
        return [*checks, Check("smoke", FAILED, f"smoke request failed: {type(exc).__name__}")]
    if answer.status_code != 200:
        detail = answer.json().get("detail", "") if answer.content else ""
        return [*checks, Check("smoke", FAILED, f"{answer.status_code}: {detail}"[:300])]
    served = answer.json().get("agent_platform", {}).get("agent_version")
    if served != version:
        return [*checks, Check("smoke", FAILED, f"answered by v{served}, not v{version}")]
    return [*checks, Check("smoke", PASSED, f"{agent}@{version} answered tenant {tenant}")]
