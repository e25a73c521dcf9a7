"""`agent-platform login` when the issuer misbehaves: each failure is one `error:` line naming the
issuer step and the problem, exit status 1, and no token is stored. The issuer is a real HTTP
server on loopback that answers the device authorization grant as scripted per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent_platform.cli.main import app
from tests.security.scripted_http import ScriptedServer, closed_port, scripted_server

runner = CliRunner(env={"COLUMNS": "400"})
DISCOVERY = "/.well-known/openid-configuration"
CODE = {
    "device_code": "dev-1",
    "user_code": "WXYZ-1234",
    "verification_uri": "http://issuer.example/device",
    "interval": 0,
    "expires_in": 30,
}


class ScriptedIssuer(ScriptedServer):
    """An issuer that offers the device authorization grant unless told otherwise."""

    def discovery(self, **overrides: Any) -> None:
        config = {
            "issuer": self.url,
            "device_authorization_endpoint": f"{self.url}/device",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
        }
        self.answer(DISCOVERY, (200, {**config, **overrides}))
        self.answer("/jwks", (200, {"keys": []}))


@pytest.fixture
def issuer() -> Iterator[ScriptedIssuer]:
    with scripted_server(ScriptedIssuer) as server:
        yield server


def login(issuer_url: str | None) -> tuple[str, list[str]]:
    """`agent-platform login`: (the one error line, the lines before it) on a refusal."""
    env = {"AGENT_PLATFORM_AUTH__AUDIENCE": "agent-platform"}
    if issuer_url:
        env["AGENT_PLATFORM_AUTH__ISSUER"] = issuer_url
    result = runner.invoke(app, ["login"], env=env)
    assert result.exit_code == 1, result.output
    assert not result.stdout and "Traceback" not in result.output
    *shown, error = result.stderr.strip().splitlines()
    return error, shown


@pytest.fixture(autouse=True)
def no_token_stored(platform_home: Path) -> Iterator[None]:
    yield
    assert not (platform_home / "auth" / "token.json").exists()


def test_no_issuer_configured() -> None:
    error, _ = login(None)
    assert error == "error: no issuer: set AGENT_PLATFORM_AUTH__ISSUER (and __AUDIENCE)"


def test_an_unreachable_issuer() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    error, _ = login(url)
    assert error == f"error: issuer {url}: unreachable (ConnectError)"


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ((200, "<html>sign in</html>"), "the issuer answered HTTP 200, not JSON"),
        ((404, "not found"), "the issuer answered HTTP 404, not JSON"),
        ((200, {"issuer": "x", "token_endpoint": "x"}), "does not offer the device authorization"),
    ],
)
def test_discovery_that_does_not_offer_the_device_grant(
    issuer: ScriptedIssuer, reply: tuple[int, Any], problem: str
) -> None:
    issuer.answer(DISCOVERY, reply)
    error, _ = login(issuer.url)
    assert error.startswith(f"error: issuer {issuer.url}: {problem}")


def test_device_authorization_refused_or_unreachable(issuer: ScriptedIssuer) -> None:
    issuer.discovery()
    issuer.answer("/device", (400, {"error": "unauthorized_client"}))
    error, _ = login(issuer.url)
    assert error == "error: device authorization refused: unauthorized_client"

    issuer.discovery(device_authorization_endpoint=f"http://127.0.0.1:{closed_port()}/device")
    error, _ = login(issuer.url)
    assert error == "error: device authorization: unreachable (ConnectError)"


@pytest.mark.parametrize(
    ("token_replies", "problem"),
    [
        (
            [(400, {"error": "authorization_pending"}), (400, {"error": "access_denied"})],
            "sign-in failed: the sign-in was refused",
        ),
        ([(400, {"error": "expired_token"})], "sign-in failed: the code expired"),
        ([(400, {"error": "invalid_grant"})], "sign-in failed: invalid_grant"),
        ([(500, "upstream timeout")], "token endpoint: the issuer answered HTTP 500, not JSON"),
    ],
)
def test_polling_ends_with_the_issuers_refusal(
    issuer: ScriptedIssuer, token_replies: list[tuple[int, Any]], problem: str
) -> None:
    issuer.discovery()
    issuer.answer("/device", (200, CODE))
    issuer.answer("/token", *token_replies)
    error, shown = login(issuer.url)
    assert shown == ["To sign in, open http://issuer.example/device and enter the code WXYZ-1234"]
    assert error == f"error: {problem}"


def test_an_unreachable_token_endpoint_is_polled_until_the_code_expires(
    issuer: ScriptedIssuer,
) -> None:
    issuer.discovery(token_endpoint=f"http://127.0.0.1:{closed_port()}/token")
    issuer.answer("/device", (200, {**CODE, "expires_in": 0.3}))
    error, _ = login(issuer.url)
    assert error == "error: sign-in failed: the code expired before the sign-in completed"


def test_a_granted_token_that_does_not_verify_is_not_kept(issuer: ScriptedIssuer) -> None:
    issuer.discovery()
    issuer.answer("/device", (200, {**CODE, "verification_uri_complete": "http://i/d?c=1"}))
    issuer.answer("/token", (200, {"access_token": "not-a-jwt", "token_type": "Bearer"}))
    error, shown = login(issuer.url)
    assert shown == ["To sign in, open http://i/d?c=1 and enter the code WXYZ-1234"]
    assert error == "error: the issued token was refused: malformed token: not a compact JWS"
