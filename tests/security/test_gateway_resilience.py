"""A local gateway with optional sign-in, its own policy directory and keys trusted for only
three seconds: it says authentication is off; the JWKS outage keeps cached keys until they
expire, then fails closed with 503; an unparseable policy keeps the last good bundle and fails
readiness, never allow-all."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import REPO, TENANT, auth_env

AGENT = "/v1/agents/grounded-qa"


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("policy") / "policies"
    shutil.copytree(REPO / "policies", target)
    return target


@pytest.fixture(scope="module")
def local_gateway(gateway_home, oidc, policy_dir, tmp_path_factory) -> Iterator:
    from tests.security.conftest import start_gateway

    server = start_gateway(
        gateway_home,
        tmp_path_factory.mktemp("local") / "gateway.log",
        **auth_env(
            oidc,
            AGENT_PLATFORM_AUTH__JWKS_MAX_AGE_S="3",
            AGENT_PLATFORM_AUTH__JWKS_REFETCH_INTERVAL_S="0.5",
            AGENT_PLATFORM_AUTHZ__POLICY_DIR=str(policy_dir),
        ),
    )
    yield server
    server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_local_without_required_sign_in_says_so_and_serves_anonymous(local_gateway):
    ready = httpx.get(f"{local_gateway.url}/readyz", timeout=30).json()
    assert ready["status"] == "ok"
    assert any("authentication off" in reason for reason in ready["reasons"])
    assert "authentication is OFF" in local_gateway.log.read_text()
    assert httpx.get(local_gateway.url + AGENT, timeout=30).status_code == 200
    bad = httpx.get(local_gateway.url + AGENT, headers=bearer("a.b.c"), timeout=30)
    assert bad.status_code == 401  # a presented token is still verified


def test_jwks_outage_keeps_cached_keys_until_they_expire_then_fails_closed(local_gateway, oidc):
    token = oidc.token("alice")
    assert httpx.get(local_gateway.url + AGENT, headers=bearer(token), timeout=30).is_success
    oidc.control("outage", down="1")
    try:
        cached = httpx.get(local_gateway.url + AGENT, headers=bearer(token), timeout=30)
        assert cached.status_code == 200
        time.sleep(3.5)
        closed = httpx.get(local_gateway.url + AGENT, headers=bearer(token), timeout=30)
        assert closed.status_code == 503
        assert closed.headers["retry-after"]
        assert "temporarily unavailable" in closed.json()["detail"]
    finally:
        oidc.control("outage", down="0")
    time.sleep(0.6)
    assert httpx.get(local_gateway.url + AGENT, headers=bearer(token), timeout=30).is_success


def test_an_unparseable_policy_keeps_the_last_good_bundle_and_fails_readiness(
    local_gateway, oidc, policy_dir
):
    good = httpx.get(local_gateway.url + AGENT, timeout=30).json()["policy_bundle"]
    viewer = bearer(oidc.token("vera"))
    run = {"input": "hello", "user": "vera"}
    runs_url = f"{local_gateway.url}/v1/agents/grounded-qa/runs"
    policy = policy_dir / "agent_platform" / "authz.rego"
    original = policy.read_text()
    try:
        policy.write_text(original.replace("default allow := false", "default allow := {{"))
        deadline = time.monotonic() + 30
        while httpx.get(f"{local_gateway.url}/readyz", timeout=30).status_code != 503:
            assert time.monotonic() < deadline, "readiness never noticed the broken policy"
            time.sleep(0.5)
        detail = httpx.get(f"{local_gateway.url}/readyz", timeout=30).json()["detail"]
        assert "authorization policy unusable" in detail
        assert "the last good bundle stays active" in detail
        time.sleep(5.5)  # past the gateway's own reload interval
        denied = httpx.post(runs_url, json=run, headers={**viewer, "X-Tenant": TENANT}, timeout=60)
        assert denied.status_code == 403  # still the good bundle's answer, not allow-all
        assert httpx.get(local_gateway.url + AGENT, timeout=30).json()["policy_bundle"] == good
    finally:
        policy.write_text(original)
    deadline = time.monotonic() + 30
    while httpx.get(f"{local_gateway.url}/readyz", timeout=30).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.5)
