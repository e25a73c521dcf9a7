"""OPA-server mode (`AGENT_PLATFORM_AUTHZ__OPA_URL`): fails closed when no OPA answers, and (when
an `opa` binary is installed) gives the embedded evaluator's decisions for the same bundle."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from agent_platform.cli.main import app
from agent_platform.security import Identity, PolicyUnavailableError
from agent_platform.security.authorize import policy_input
from agent_platform.security.opa import DECISION_PATH, OpaPolicyEngine
from agent_platform.security.policy import PolicyEngine, read_bundle
from agent_platform.settings import Settings
from tests.security.scripted_http import ScriptedServer, scripted_server

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_opa_fails_closed(platform_home, monkeypatch) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    engine = OpaPolicyEngine(url, POLICIES, timeout_s=0.5, cache_s=0)
    assert engine.error and "unreachable" in engine.error  # readiness fails
    admin = Identity(subject="ada", roles=frozenset({"admin"}))
    body = policy_input(admin, "models.promote", settings=Settings(profile="local"))
    with pytest.raises(PolicyUnavailableError, match="OPA server is unavailable"):
        engine.decide(body)

    monkeypatch.setenv("AGENT_PLATFORM_AUTHZ__OPA_URL", url)
    refused = CliRunner().invoke(app, ["--as", "lea", "models", "rollback", "qa"])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "OPA server is unavailable" in refused.stderr


@pytest.fixture
def not_opa() -> Iterator[str]:
    """A real HTTP server on loopback that is not OPA (a static file server)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_server_that_is_not_opa_fails_closed(not_opa: str) -> None:
    engine = OpaPolicyEngine(not_opa, POLICIES, timeout_s=2, cache_s=0)
    admin = Identity(subject="ada", roles=frozenset({"admin"}))
    with pytest.raises(PolicyUnavailableError, match="HTTP 501"):
        engine.decide(policy_input(admin, "deploy", settings=Settings(profile="local")))


@pytest.fixture(scope="module")
def opa_server(tmp_path_factory) -> Iterator[str]:
    binary = shutil.which("opa")
    if binary is None:
        pytest.skip("no `opa` binary on PATH: the OPA contract test needs a real OPA server")
    port = closed_port()
    process = subprocess.Popen(
        [binary, "run", "--server", f"--addr=127.0.0.1:{port}", str(POLICIES)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_opa_gives_the_embedded_evaluators_decisions(opa_server: str) -> None:
    opa = OpaPolicyEngine(opa_server, POLICIES, cache_s=0)
    embedded = PolicyEngine(POLICIES, cache_s=0)
    settings = Settings(profile="local")
    try:
        for roles in ({"user"}, {"viewer"}, {"admin"}, {"security_architect"}, set()):
            identity = Identity(subject="u", username="u", roles=frozenset(roles),
                                tenants=frozenset({"acme"}))  # fmt: skip
            for action, resource in (("agents.run", {"user": "u"}), ("models.promote", {}),
                                     ("prompts.approve", {"review_role": "safety"})):  # fmt: skip
                body = policy_input(identity, action, settings=settings, tenant="acme",
                                    resource=resource)  # fmt: skip
                body |= {"profile": "production", "auth_required": True}
                ours, theirs = embedded.decide(body), opa.decide(body)
                assert (theirs.allow, set(theirs.missing), set(theirs.roles)) == (
                    ours.allow, set(ours.missing), set(ours.roles),
                ), (roles, action)  # fmt: skip
    finally:
        embedded.close()
        opa.close()


@pytest.fixture
def misdeployed_opa() -> Iterator[ScriptedServer]:
    """An HTTP server that answers OPA's health check; each test scripts its decision replies."""
    with scripted_server(ScriptedServer) as server:
        server.answer("/health", (200, {}))
        yield server


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ((200, {}), "it does not define data.agent_platform.authz.decision"),  # bundle not loaded
        ((200, "<html>proxy error</html>"), "not JSON"),
        ((500, {"code": "internal_error"}), "HTTP 500 from http://127.0.0.1:"),
    ],
)
def test_an_opa_without_a_usable_decision_fails_closed(
    misdeployed_opa: ScriptedServer,
    reply: tuple[int, object],
    problem: str,
    platform_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    misdeployed_opa.answer(DECISION_PATH, reply)
    engine = OpaPolicyEngine(misdeployed_opa.url, POLICIES, timeout_s=2, cache_s=0)
    assert engine.error is None  # healthy: only the decision shows what is wrong
    admin = Identity(subject="ada", roles=frozenset({"admin"}))
    with pytest.raises(PolicyUnavailableError, match="the OPA server is unavailable: ") as refused:
        engine.decide(policy_input(admin, "deploy", settings=Settings(profile="local")))
    assert problem in str(refused.value)
    engine.close()

    monkeypatch.setenv("AGENT_PLATFORM_AUTHZ__OPA_URL", misdeployed_opa.url)
    result = CliRunner().invoke(app, ["--as", "ada", "models", "rollback", "qa"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert problem in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_an_unhealthy_opa_or_a_missing_bundle_is_reported(
    misdeployed_opa: ScriptedServer, tmp_path: Path
) -> None:
    misdeployed_opa.answer("/health", (503, {}))
    engine = OpaPolicyEngine(misdeployed_opa.url, POLICIES, timeout_s=2, cache_s=0)
    assert engine.error == f"OPA server {misdeployed_opa.url} is not healthy"
    misdeployed_opa.answer("/health", (200, {}))
    assert engine.reload() and engine.error is None  # recovers once OPA answers
    engine.close()

    missing = OpaPolicyEngine(misdeployed_opa.url, tmp_path / "no-policies", cache_s=0)
    assert missing.error and "no-policies" in missing.error
    admin = Identity(subject="ada", roles=frozenset({"admin"}))
    with pytest.raises(PolicyUnavailableError, match="no authorization policy is loaded: "):
        missing.decide(policy_input(admin, "deploy", settings=Settings(profile="local")))
    missing.close()


def test_opa_decisions_are_reused_for_the_cache_time_and_carry_the_local_bundle_hash(
    misdeployed_opa: ScriptedServer,
) -> None:
    """OPA's allow names the roles that granted it; asked again within `cache_s`, the engine
    answers from its cache (here OPA fails from its second call on, and nothing notices)."""
    granted = {"result": {"allow": True, "roles": ["admin"], "grantors": ["admin"]}}
    misdeployed_opa.answer(DECISION_PATH, (200, granted), (500, {"code": "internal_error"}))
    engine = OpaPolicyEngine(misdeployed_opa.url, POLICIES, timeout_s=2, cache_s=60)
    admin = Identity(subject="ada", roles=frozenset({"admin"}))
    body = policy_input(admin, "deploy", settings=Settings(profile="local"))
    first = engine.decide(body)
    digest, _ = read_bundle(POLICIES)
    assert (first.allow, first.roles, first.bundle) == (True, ("admin",), digest)
    assert engine.decide(body) == first  # from the cache: OPA would answer 500 now
    other = policy_input(admin, "models.promote", settings=Settings(profile="local"))
    with pytest.raises(PolicyUnavailableError, match="HTTP 500"):  # another question asks OPA
        engine.decide(other)
    engine.close()
