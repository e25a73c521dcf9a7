"""The policy at the gateway, through the wire: denials are 403 problems naming the action and
what the caller lacks, each an audit record with the policy bundle's hash; session limits by
`sid`; service-account API keys created with the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.security.conftest import REPO, TENANT

AGENT = "/v1/agents/grounded-qa"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cli(home, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "AGENT_PLATFORM_HOME": str(home), "PYTHONPATH": str(REPO), **env}
    environment.pop("AGENT_PLATFORM_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "agent_platform.cli.main", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_a_tenant_the_caller_is_not_a_member_of_is_a_403(secure_gateway, oidc, ask, audit_tail):
    response = httpx.post(
        f"{secure_gateway.url}/v1/chat/completions",
        json=ask(user="mallory"),
        headers={**bearer(oidc.token("mallory")), "X-Tenant": TENANT},
        timeout=60,
    )
    assert response.status_code == 403, response.text
    assert response.json()["detail"] == (
        f"agents.run: denied, missing membership of tenant {TENANT}"
    )
    record = audit_tail(1)[0]
    assert (record["kind"], record["action"], record["tenant"]) == (
        "authz.denial",
        "agents.run",
        TENANT,
    )
    assert record["actor"]["subject"] == "mallory" and record["actor"]["verified"] is True
    assert record["details"]["policy_bundle"].startswith("sha256:")


def test_the_native_runs_body_cannot_smuggle_another_tenant(secure_gateway, oidc):
    response = httpx.post(
        f"{secure_gateway.url}/v1/agents/grounded-qa/runs",
        json={"input": "hello", "user": "mallory", "tenant": TENANT},
        headers={**bearer(oidc.token("mallory")), "X-Tenant": "other"},
        timeout=60,
    )
    assert response.status_code == 403
    assert "membership of tenant handbook" in response.json()["detail"]


def test_a_viewer_may_read_but_not_run(secure_gateway, oidc, ask):
    token = oidc.token("vera")
    assert httpx.get(secure_gateway.url + AGENT, headers=bearer(token), timeout=30).is_success
    response = httpx.post(
        f"{secure_gateway.url}/v1/chat/completions",
        json=ask(user="vera"),
        headers={**bearer(token), "X-Tenant": TENANT},
        timeout=60,
    )
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "agents.run: denied, missing permission agents.run (granted by roles: admin, operator, "
        "user)"
    )


def test_reading_another_users_session_needs_an_operator(secure_gateway, oidc):
    url = f"{secure_gateway.url}/v1/sessions/s-1"
    alice = httpx.get(
        url,
        params={"user": "bob"},
        headers={**bearer(oidc.token("alice")), "X-Tenant": TENANT},
        timeout=30,
    )
    assert alice.status_code == 403
    assert "act for another user" in alice.json()["detail"]
    operator = httpx.get(
        url,
        params={"user": "bob"},
        headers={**bearer(oidc.token("olga")), "X-Tenant": TENANT},
        timeout=30,
    )
    assert operator.status_code == 404  # allowed; bob simply has no such session


def test_a_fourth_concurrent_session_is_refused_until_one_is_revoked(secure_gateway, oidc):
    tokens = [oidc.token("carol") for _ in range(4)]
    for token in tokens[:3]:
        ok = httpx.get(secure_gateway.url + AGENT, headers=bearer(token), timeout=30)
        assert ok.status_code == 200, ok.text
    refused = httpx.get(secure_gateway.url + AGENT, headers=bearer(tokens[3]), timeout=30)
    assert refused.status_code == 403
    assert "limit of 3 concurrent sessions" in refused.json()["detail"]
    listed = cli(secure_gateway.home, "auth", "sessions", "carol")
    first_sid = listed.stdout.split()[0]
    revoked = cli(secure_gateway.home, "auth", "revoke-session", "carol", "--sid", first_sid)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked 1 session(s) of carol" in revoked.stdout
    again = httpx.get(secure_gateway.url + AGENT, headers=bearer(tokens[0]), timeout=30)
    assert again.status_code == 403 and "revoked" in again.json()["detail"]
    now_fits = httpx.get(secure_gateway.url + AGENT, headers=bearer(tokens[3]), timeout=30)
    assert now_fits.status_code == 200


def test_a_service_account_key_is_shown_once_and_stored_as_a_hash(secure_gateway):
    created = cli(
        secure_gateway.home, "--as", "ops", "auth", "create-key", "reporting",
        "--role", "viewer", "--tenant", TENANT,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("ap_")
    stored = (secure_gateway.home / "security" / "api_keys.sqlite").read_bytes()
    assert key.split("_", 2)[2].encode() not in stored
    listed = cli(secure_gateway.home, "auth", "list-keys")
    assert "reporting" in listed.stdout and key not in listed.stdout
    read = httpx.get(secure_gateway.url + AGENT, headers=bearer(key), timeout=30)
    assert read.status_code == 200, read.text
    key_id = key.split("_")[1]
    assert cli(secure_gateway.home, "--as", "ops", "auth", "revoke-key", key_id).returncode == 0
    refused = httpx.get(secure_gateway.url + AGENT, headers=bearer(key), timeout=30)
    assert refused.status_code == 401


@pytest.mark.parametrize("client", ["backend"])
def test_a_service_acts_for_its_end_users(secure_gateway, oidc, client):
    response = httpx.get(
        f"{secure_gateway.url}/v1/sessions/s-2",
        params={"user": "bob"},
        headers={**bearer(oidc.token(client)), "X-Tenant": TENANT},
        timeout=30,
    )
    assert response.status_code == 404  # authorized: the session just does not exist
