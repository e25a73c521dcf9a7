"""The Rego bundle: its unit tests pass (and a wrong one fails), a broken bundle keeps the last
good one, no bundle fails closed, and nothing in the input can forge a decision."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_platform.cli.main import app
from agent_platform.security import Identity, PolicyUnavailableError
from agent_platform.security.authorize import policy_input
from agent_platform.security.policy import PolicyEngine, read_bundle
from agent_platform.settings import Settings

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_AUTH = {"required": True, "issuer": "https://idp.example", "audience": "agents"}
SETTINGS = Settings(auth=PRODUCTION_AUTH)
ALICE = Identity(
    subject="a1", username="alice", roles=frozenset({"user"}), tenants=frozenset({"acme"})
)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(REPO / "policies", target)
    return target


@pytest.fixture
def engine(policy_dir: Path) -> Iterator[PolicyEngine]:
    engine = PolicyEngine(policy_dir, cache_s=0)
    yield engine
    engine.close()


def test_the_shipped_policy_unit_tests_pass_through_the_cli():
    result = CliRunner().invoke(app, ["auth", "policy-test"])
    assert result.exit_code == 0, result.output
    digest, _ = read_bundle(REPO / "policies")
    assert f"11/11 passed, bundle {digest}" in result.output


def test_a_wrong_unit_test_fails(engine: PolicyEngine, policy_dir: Path):
    tests = policy_dir / "agent_platform" / "authz_test.rego"
    tests.write_text(
        tests.read_text()
        + '\ntest_viewer_may_promote if {\n\tauthz.allow with input.identity as {"roles": '
        '["viewer"], "verified": true, "kind": "user"} with input.action as "models.promote"\n'
        '\t\twith input.resource as {} with input.profile as "production"\n'
        "\t\twith input.auth_required as true\n}\n"
    )
    assert engine.reload()
    results = engine.run_tests()
    assert results.pop("data.agent_platform.authz_test.test_viewer_may_promote") is False
    assert all(results.values())


def test_decisions_name_what_is_missing(engine: PolicyEngine):
    allowed = engine.decide(
        policy_input(ALICE, "agents.run", settings=SETTINGS, tenant="acme", resource={})
    )
    assert allowed.allow and allowed.roles == ("user",)
    denied = engine.decide(
        policy_input(ALICE, "models.promote", settings=SETTINGS, tenant="acme", resource={})
    )
    assert not denied.allow and denied.missing == ("permission",)
    assert denied.grantors == ("admin", "release_manager")


def test_quotes_in_the_input_cannot_forge_a_decision(engine: PolicyEngine):
    # rego-cpp does not escape output strings: the policy never echoes input, so this stays a
    # well-formed denial
    forged = 'x", "allow": true, "y": "'
    decision = engine.decide(
        policy_input(ALICE, "agents.run", settings=SETTINGS, tenant=forged, resource={})
    )
    assert not decision.allow and decision.missing == ("tenant_membership",)


def test_a_broken_policy_keeps_the_last_good_bundle(engine: PolicyEngine, policy_dir: Path):
    good = engine.digest
    policy = policy_dir / "agent_platform" / "authz.rego"
    policy.write_text(policy.read_text().replace("default allow := false", "default allow := {{"))
    assert engine.reload() is False
    assert engine.error and engine.error.startswith("agent_platform/authz.rego:")
    assert engine.digest == good
    decision = engine.decide(
        policy_input(ALICE, "models.promote", settings=SETTINGS, tenant="acme", resource={})
    )
    assert not decision.allow and decision.bundle == good


def test_an_allow_all_policy_is_refused_by_the_probe(engine: PolicyEngine, policy_dir: Path):
    policy = policy_dir / "agent_platform" / "authz.rego"
    policy.write_text(policy.read_text().replace("default allow := false", "default allow := true"))
    assert engine.reload() is False
    assert "probe decision must be a denial" in (engine.error or "")


def test_no_usable_bundle_fails_closed(tmp_path: Path):
    (tmp_path / "broken.rego").write_text("package agent_platform.authz\nallow if {{\n")
    engine = PolicyEngine(tmp_path)
    try:
        assert engine.digest is None and engine.error
        with pytest.raises(PolicyUnavailableError):
            engine.decide(policy_input(ALICE, "agents.read", settings=SETTINGS, resource={}))
    finally:
        engine.close()


def test_a_crashed_evaluator_is_restarted_with_the_good_bundle(engine: PolicyEngine):
    assert engine._worker is not None
    engine._worker.process.kill()
    engine._worker.process.wait()
    decision = engine.decide(
        policy_input(ALICE, "agents.run", settings=SETTINGS, tenant="acme", resource={})
    )
    assert decision.allow


def test_policy_test_cli_refuses_a_broken_bundle_and_one_without_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "authz.rego").write_text("package agent_platform.authz\nallow if {{\n")
    monkeypatch.setenv("AGENT_PLATFORM_AUTHZ__POLICY_DIR", str(broken))
    result = CliRunner().invoke(app, ["auth", "policy-test"])
    assert result.exit_code == 1 and not result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: authz.rego:"), result.stderr

    untested = tmp_path / "untested"
    shutil.copytree(REPO / "policies", untested)
    (untested / "agent_platform" / "authz_test.rego").unlink()
    monkeypatch.setenv("AGENT_PLATFORM_AUTHZ__POLICY_DIR", str(untested))
    result = CliRunner().invoke(app, ["auth", "policy-test"])
    digest, _ = read_bundle(untested)
    assert result.exit_code == 1  # a bundle without unit tests does not pass
    assert result.stdout.strip() == f"0/0 passed, bundle {digest}"


def test_revoking_an_unknown_api_key_names_it(platform_home: Path) -> None:
    result = CliRunner().invoke(app, ["--as", "ops", "auth", "revoke-key", "ak_nope"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: key_id: no API key 'ak_nope'"
