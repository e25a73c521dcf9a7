"""Claim mapping, session limits and the CLI operator identity, without a gateway."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agent_platform.cli.main import app
from agent_platform.security.claims import identity_from_claims
from agent_platform.security.errors import SessionRefusedError
from agent_platform.security.sessions import RedisSessionTracker, SQLiteSessionTracker
from agent_platform.settings import AuthSettings

KEYCLOAK = {
    "iss": "https://kc.example/realms/acme",
    "sub": "f1e2",
    "azp": "agent-platform",
    "preferred_username": "alice",
    "realm_access": {"roles": ["user", "offline_access"]},
    "resource_access": {"agent-platform": {"roles": ["operator"]}, "other": {"roles": ["admin"]}},
    "groups": ["/tenants/acme", "/tenants/globex/readers", "/staff"],
    "sid": "s-1",
}


def test_keycloak_claims_map_to_an_identity():
    identity = identity_from_claims(KEYCLOAK, AuthSettings(audience="agent-platform"))
    assert identity.username == "alice" and identity.kind == "user"
    assert identity.roles == {"user", "offline_access", "operator"}  # not other clients' roles
    assert identity.tenants == {"acme", "globex"}
    assert (identity.session_id, identity.client_id) == ("s-1", "agent-platform")


def test_other_providers_configure_the_claims():
    claims = {"sub": "u", "iss": "x", "email": "u@x", "roles": ["viewer"], "org": ["acme"]}
    auth = AuthSettings(
        username_claim="email", roles_claims=["roles"], tenants_claim="org", groups_claim="none"
    )
    identity = identity_from_claims(claims, auth)
    assert (identity.username, identity.roles, identity.tenants) == ("u@x", {"viewer"}, {"acme"})


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _exercise(tracker, clock: Clock) -> None:
    for sid in ("a", "b", "c"):
        tracker.touch("alice", sid)
    with pytest.raises(SessionRefusedError, match="limit of 3 concurrent sessions"):
        tracker.touch("alice", "d")
    tracker.touch("bob", "d")  # limits are per user
    clock.now += 8 * 3600 + 1
    with pytest.raises(SessionRefusedError, match="idle for more than 8 h"):
        tracker.touch("alice", "a")
    tracker.touch("alice", "d")  # idle sessions no longer count
    assert tracker.revoke("alice", "d") == 1
    with pytest.raises(SessionRefusedError, match="revoked"):
        tracker.touch("alice", "d")


def _race(tracker) -> int:
    """Eight brand-new sessions of one user at once: how many got in."""
    from concurrent.futures import ThreadPoolExecutor

    def sign_in(n: int) -> bool:
        try:
            tracker.touch("racer", f"sid-{n}")
        except SessionRefusedError:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(sign_in, range(8)))


def test_sqlite_sessions_idle_timeout_limit_and_revocation(tmp_path):
    clock = Clock()
    tracker = SQLiteSessionTracker(
        tmp_path / "s.sqlite", idle_timeout_s=8 * 3600, max_sessions=3, clock=clock
    )
    _exercise(tracker, clock)
    assert _race(tracker) == 3


@pytest.mark.redis
def test_redis_sessions_idle_timeout_limit_and_revocation(redis_url):
    import uuid

    clock = Clock()
    tracker = RedisSessionTracker(
        redis_url,
        prefix=f"test:{uuid.uuid4().hex}:",
        idle_timeout_s=8 * 3600,
        max_sessions=3,
        clock=clock,
    )
    _exercise(tracker, clock)
    assert _race(tracker) == 3


def test_as_name_is_recorded_unverified_and_production_refuses_it(platform_home, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["--as", "lea", "auth", "whoami"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["verified"] is False
    monkeypatch.setenv("AGENT_PLATFORM_PROFILE", "production")
    for name in ("POSTGRES_URL", "MLFLOW_TRACKING_URI", "WEAVIATE_URL"):
        monkeypatch.setenv(f"AGENT_PLATFORM_{name}", "postgresql://nobody@127.0.0.1:1/none")
    refused = runner.invoke(app, ["--as", "lea", "models", "promote", "3", "--agent", "qa"])
    assert refused.exit_code == 1
    assert "production needs AGENT_PLATFORM_TOKEN" in refused.output


def test_operator_actions_ask_the_policy_and_are_audited(platform_home, monkeypatch):
    from agent_platform.audit import open_audit_log
    from agent_platform.settings import get_settings

    monkeypatch.setenv("AGENT_PLATFORM_AUTH__REQUIRED", "true")
    monkeypatch.setenv("AGENT_PLATFORM_AUTH__ISSUER", "https://idp.example")
    monkeypatch.setenv("AGENT_PLATFORM_AUTH__AUDIENCE", "agent-platform")
    denied = CliRunner().invoke(app, ["--as", "lea", "prompts", "promote", "grounded_qa", "1"])
    assert denied.exit_code == 1
    assert "prompts.promote: denied, missing permission prompts.promote" in denied.output
    record = open_audit_log(get_settings()).tail(1)[0]
    assert (record.kind, record.action, record.outcome) == (
        "authz.denial",
        "prompts.promote",
        "denied",
    )
    assert record.actor["subject"] == "dev:lea" and record.actor["verified"] is False
    assert record.details["policy_bundle"].startswith("sha256:")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_api_keys_are_stored_as_hashes_on_both_stores(backend, tmp_path, request):
    from agent_platform.security.api_keys import ApiKeyStore, PostgresApiKeyStore
    from agent_platform.security.errors import AuthenticationError

    if backend == "postgres":
        store = PostgresApiKeyStore(request.getfixturevalue("postgres_url"))
    else:
        store = ApiKeyStore(tmp_path / "keys.sqlite")
    key, record = store.create("reporting", roles=["viewer"], tenants=["acme"])
    secret = key.split("_", 2)[2]
    rows, _ = store._run("SELECT hash FROM {t} WHERE key_id = ?", (record.key_id,))
    assert rows and secret not in rows[0][0] and len(rows[0][0]) == 64
    identity = store.authenticate(key)
    assert (identity.kind, identity.roles, identity.tenants) == ("service", {"viewer"}, {"acme"})
    with pytest.raises(AuthenticationError) as wrong:
        store.authenticate(key[:-2] + "xx")
    assert wrong.value.reason == "unknown API key"
    assert store.revoke(record.key_id)
    with pytest.raises(AuthenticationError) as revoked:
        store.authenticate(key)
    assert revoked.value.reason == f"API key {record.key_id} is revoked"


@pytest.mark.parametrize(
    ("command", "action"),
    [
        (["index", "restore", "--tenant", "acme", "--snapshot", "s1"], "index.restore"),
        (["readiness", "signoff", "security-review"], "readiness.signoff"),
        (["models", "rollback", "qa"], "models.rollback"),
    ],
)
def test_other_operator_commands_ask_the_policy(platform_home, monkeypatch, command, action):
    monkeypatch.setenv("AGENT_PLATFORM_AUTH__REQUIRED", "true")
    monkeypatch.setenv("AGENT_PLATFORM_AUTH__ISSUER", "https://idp.example")
    monkeypatch.setenv("AGENT_PLATFORM_AUTH__AUDIENCE", "agent-platform")
    denied = CliRunner().invoke(app, ["--as", "lea", *command])
    assert denied.exit_code == 1
    assert f"{action}: denied, missing permission {action}" in denied.output
