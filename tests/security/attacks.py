"""Tokens an attacker would try, minted locally. Each names what it attacks; every one must be
refused with the same 401 and leave an audit record."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey


def b64(data: bytes | dict) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(issuer: str, audience: str, **override) -> dict:
    now = int(time.time())
    body = {
        "iss": issuer,
        "aud": audience,
        "sub": "mallory",
        "preferred_username": "mallory",
        "realm_access": {"roles": ["admin"]},
        "tenants": ["handbook"],
        "iat": now,
        "exp": now + 600,
    }
    body.update(override)
    return {k: v for k, v in body.items() if v is not None}


def signed(key: RSAKey | ECKey, body: dict, *, alg: str = "RS256", **header) -> str:
    return jwt.encode({"alg": alg, "kid": key.kid, **header}, body, key, algorithms=[alg])


def attacks(
    *, issuer: str, audience: str, minter: RSAKey, real_token: str, es_kid: str
) -> dict[str, Callable[[], str]]:
    """Attack name -> a function returning the Authorization header value to send."""
    good = claims(issuer, audience)
    public_pem = minter.as_pem(private=False)
    stranger = RSAKey.generate_key(2048, parameters={"kid": minter.kid})
    unknown = RSAKey.generate_key(2048, parameters={"kid": "kid-nobody-published"})

    def alg_none() -> str:
        return f"Bearer {b64({'alg': 'none', 'kid': minter.kid})}.{b64(good)}."

    def hs256_with_public_key() -> str:
        signing_input = f"{b64({'alg': 'HS256', 'kid': minter.kid, 'typ': 'JWT'})}.{b64(good)}"
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"Bearer {signing_input}.{b64(mac)}"

    def tampered_payload() -> str:
        header, payload, signature = real_token.split(".")
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        body["realm_access"] = {"roles": ["admin"]}
        return f"Bearer {header}.{b64(body)}.{signature}"

    def rs256_header_on_ec_key() -> str:
        # a published ES256 key id with an RSA signature: algorithm/key confusion
        return "Bearer " + signed(
            RSAKey.generate_key(2048, parameters={"kid": es_kid}), good, alg="RS256"
        )

    def long_kid(length: int) -> Callable[[], str]:
        padded = RSAKey.import_key(minter.as_dict(private=True), {"kid": "A" * length})
        return lambda: "Bearer " + signed(padded, good)

    now = int(time.time())
    return {
        "alg none": alg_none,
        "HS256 signed with the public key": hs256_with_public_key,
        "wrong key (published kid, other key)": lambda: "Bearer " + signed(stranger, good),
        "expired": lambda: (
            "Bearer " + signed(minter, claims(issuer, audience, iat=now - 7200, exp=now - 3600))
        ),
        "not yet valid (nbf in the future)": lambda: (
            "Bearer " + signed(minter, claims(issuer, audience, nbf=now + 3600))
        ),
        "issued in the future (iat)": lambda: (
            "Bearer " + signed(minter, claims(issuer, audience, iat=now + 3600, exp=now + 7200))
        ),
        "no exp": lambda: "Bearer " + signed(minter, claims(issuer, audience, exp=None)),
        "wrong audience": lambda: "Bearer " + signed(minter, claims(issuer, "other-api")),
        "wrong issuer": lambda: (
            "Bearer " + signed(minter, claims("https://evil.example/realms/x", audience))
        ),
        "unknown kid": lambda: "Bearer " + signed(unknown, good),
        "tampered payload": tampered_payload,
        "RS256 header naming an EC key": rs256_header_on_ec_key,
        "jku header pointing elsewhere": lambda: (
            "Bearer " + signed(minter, good, jku="https://evil.example/jwks")
        ),
        "oversized token (9 KB header)": long_kid(9000),
        "oversized header (2 KB kid)": long_kid(2000),
        "malformed: two segments": lambda: "Bearer abc.def",
        "malformed: header not base64": lambda: "Bearer %%%.e30.sig",
        "malformed: header is a JSON list": lambda: f"Bearer {b64(b'[1,2]')}.{b64(good)}.c2ln",
        "malformed: five segments (JWE)": lambda: "Bearer a.b.c.d.e",
        "not a bearer scheme": lambda: "Basic YWxpY2U6c2VjcmV0",
        "empty bearer": lambda: "Bearer",
        "unknown API key": lambda: "Bearer ap_000000000000_notarealsecret",
    }
