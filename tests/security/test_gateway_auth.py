"""Authentication at the gateway, through the wire, against a real OIDC provider: tokens from a
real client credentials grant pass; every attack gets the same 401 and an audit record; key
rotation at the provider needs no restart; the policy's denials are 403s naming the action."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from agent_platform.security.errors import AuthenticationError
from agent_platform.security.policy import read_bundle
from tests.security.attacks import attacks
from tests.security.conftest import AUDIENCE, REPO, TENANT

AGENT = "/v1/agents/grounded-qa"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def payload(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_token_from_a_real_grant_reads_the_agent_and_the_policy_hash(secure_gateway, oidc):
    token = oidc.token("alice")
    assert payload(token)["realm_access"] == {"roles": ["user"]}  # Keycloak layout
    response = httpx.get(secure_gateway.url + AGENT, headers=bearer(token), timeout=30)
    assert response.status_code == 200, response.text
    digest, _ = read_bundle(REPO / "policies")
    assert response.json()["policy_bundle"] == digest


@pytest.mark.parametrize("client", ["pat", "backend"])
def test_ps256_and_es256_tokens_are_accepted(secure_gateway, oidc, client):
    token = oidc.token(client)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == {"pat": "PS256", "backend": "ES256"}[client]
    response = httpx.get(secure_gateway.url + AGENT, headers=bearer(token), timeout=30)
    assert response.status_code == 200, response.text


def test_a_signed_in_user_asks_the_agent(secure_gateway, oidc, ask):
    response = httpx.post(
        f"{secure_gateway.url}/v1/chat/completions",
        json=ask(user="alice"),
        headers={**bearer(oidc.token("alice")), "X-Tenant": TENANT},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


def test_no_token_is_a_401_with_a_challenge(secure_gateway, audit_tail):
    response = httpx.get(secure_gateway.url + AGENT, timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["detail"] == AuthenticationError.public_message
    record = audit_tail(1)[0]
    assert (record["kind"], record["details"]["reason"]) == ("auth.failure", "no credentials")
    assert record["details"]["policy_bundle"].startswith("sha256:")


def test_every_attack_gets_the_same_401_and_an_audit_record(secure_gateway, oidc, audit_tail):
    es_kid = next(k["kid"] for k in oidc.jwks()["keys"] if k["kty"] == "EC")
    cases = attacks(
        issuer=oidc.url,
        audience=AUDIENCE,
        minter=oidc.minter,
        real_token=oidc.token("alice"),
        es_kid=es_kid,
    )
    reasons = {}
    for name, make in cases.items():
        before = audit_tail(1)[0]["seq"] if audit_tail(1) else 0
        response = httpx.get(
            secure_gateway.url + AGENT, headers={"Authorization": make()}, timeout=30
        )
        assert response.status_code == 401, (name, response.status_code, response.text)
        body = response.json()
        assert body["detail"] == AuthenticationError.public_message, name
        assert set(body) <= {"type", "title", "status", "detail", "instance", "trace_id"}, name
        records = [r for r in audit_tail(5) if r["seq"] > before]
        assert [r["kind"] for r in records] == ["auth.failure"], name
        reasons[name] = records[0]["details"]["reason"]
    print(json.dumps(reasons, indent=1))  # the list of attacks and results
    # the audit log says why, the wire never does
    assert "algorithm 'none' not allowed" in reasons["alg none"]
    assert "algorithm 'HS256' not allowed" in reasons["HS256 signed with the public key"]
    assert "bad_signature" in reasons["wrong key (published kid, other key)"]
    assert "bad_signature" in reasons["tampered payload"]
    assert "expired" in reasons["expired"]
    assert "nbf" in reasons["not yet valid (nbf in the future)"]
    assert "aud" in reasons["wrong audience"]
    assert "iss" in reasons["wrong issuer"]
    assert "unknown key id" in reasons["unknown kid"]
    assert "not a RS256 key" in reasons["RS256 header naming an EC key"]
    assert "too long" in reasons["oversized token (9 KB header)"]
    assert "header longer than" in reasons["oversized header (2 KB kid)"]


def test_unknown_kids_refetch_the_jwks_at_most_once_a_second(secure_gateway, oidc):
    cases = attacks(
        issuer=oidc.url, audience=AUDIENCE, minter=oidc.minter, real_token="a.b.c", es_kid="x"
    )
    before = oidc.control("stats")["jwksRequests"]
    started = time.monotonic()
    for _ in range(20):
        header = {"Authorization": cases["unknown kid"]()}
        assert httpx.get(secure_gateway.url + AGENT, headers=header, timeout=30).status_code == 401
    elapsed = time.monotonic() - started
    fetched = oidc.control("stats")["jwksRequests"] - before
    assert 1 <= fetched <= int(elapsed) + 2, (fetched, elapsed)


def test_key_rotation_at_the_provider_needs_no_restart(secure_gateway, oidc):
    old = oidc.token("alice")
    kids = oidc.control("rotate")["kids"]
    new = oidc.token("alice")
    new_kid = json.loads(base64.urlsafe_b64decode(new.split(".")[0] + "=="))["kid"]
    assert (
        new_kid == kids[0] != json.loads(base64.urlsafe_b64decode(old.split(".")[0] + "=="))["kid"]
    )
    time.sleep(1.1)  # past the refetch interval of the last unknown kid
    assert httpx.get(secure_gateway.url + AGENT, headers=bearer(new), timeout=30).status_code == 200
    assert httpx.get(secure_gateway.url + AGENT, headers=bearer(old), timeout=30).status_code == 200
    oidc.control("rotate", drop="1")  # the old keys are withdrawn
    time.sleep(1.1)
    newest = oidc.token("alice")
    assert (
        httpx.get(secure_gateway.url + AGENT, headers=bearer(newest), timeout=30).status_code == 200
    )
    assert httpx.get(secure_gateway.url + AGENT, headers=bearer(old), timeout=30).status_code == 401
