"""The bearer-token verifier on its own, against an issuer's real JWKS over HTTP: the refusals the
gateway's attack matrix does not reach (a token naming no key, a time that is not a number, a
client outside the allow-list, a deployment's smaller size cap), each naming what failed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from joserfc.jwk import RSAKey

from agent_platform.security.errors import AuthenticationError
from agent_platform.security.jwks import JwksCache
from agent_platform.security.tokens import TokenVerifier
from tests.security.attacks import b64, claims, signed
from tests.security.scripted_http import ScriptedServer, scripted_server

AUDIENCE = "agent-platform"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})


@pytest.fixture(scope="module")
def issuer() -> Iterator[ScriptedServer]:
    """An issuer publishing KEY's public half."""
    with scripted_server(ScriptedServer) as server:
        discovery = {"issuer": server.url, "jwks_uri": f"{server.url}/jwks"}
        server.answer("/.well-known/openid-configuration", (200, discovery))
        server.answer("/jwks", (200, {"keys": [KEY.as_dict(private=False)]}))
        yield server


def verifier(issuer: ScriptedServer, **options) -> TokenVerifier:
    keys = JwksCache(issuer.url, timeout_s=5)
    return TokenVerifier(
        keys, issuer=issuer.url, audience=AUDIENCE, algorithms=["RS256"], **options
    )


def test_a_valid_token_from_an_allowed_client_passes(issuer: ScriptedServer) -> None:
    token = signed(KEY, claims(issuer.url, AUDIENCE, azp="agent-platform-cli"))
    verified = verifier(issuer, allowed_clients=["agent-platform-cli"]).verify(token)
    assert verified["sub"] == "mallory" and verified["azp"] == "agent-platform-cli"


@pytest.mark.parametrize(
    ("token", "options", "reason"),
    [
        (
            lambda url: signed(KEY, claims(url, AUDIENCE, azp="someone-else")),
            {"allowed_clients": ["agent-platform-cli"]},
            "client 'someone-else' is not allowed",
        ),
        (
            lambda url: signed(KEY, claims(url, AUDIENCE)),  # neither azp nor client_id
            {"allowed_clients": ["agent-platform-cli"]},
            "client 'None' is not allowed",
        ),
        (
            lambda url: f"{b64({'alg': 'RS256'})}.{b64(claims(url, AUDIENCE))}.c2ln",
            {},
            "token names no valid key id",
        ),
        (
            lambda url: signed(KEY, claims(url, AUDIENCE), kid=""),
            {},
            "token names no valid key id",
        ),
        (
            lambda url: signed(KEY, claims(url, AUDIENCE, iat="yesterday")),
            {},
            "invalid_claim (iat)",
        ),
        (
            lambda url: signed(KEY, claims(url, AUDIENCE)),
            {"max_token_bytes": 256},
            "token longer than 256 bytes",
        ),
    ],
    ids=["client not allowed", "no client", "no kid", "empty kid", "iat text", "size cap"],
)
def test_refusals_name_what_failed(
    issuer: ScriptedServer, token, options: dict, reason: str
) -> None:
    with pytest.raises(AuthenticationError) as refused:
        verifier(issuer, **options).verify(token(issuer.url))
    assert reason in refused.value.reason  # for the audit log
    assert str(refused.value) == AuthenticationError.public_message  # the same for every refusal
