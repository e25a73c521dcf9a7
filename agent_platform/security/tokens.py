"""Bearer JWT verification with joserfc: algorithm allow-list, key by `kid`, registered claims.

No hand-written parsing: joserfc splits and decodes the token, checks the signature and the
claims; this module only decides which key and which algorithms a token may use. `none` and HS*
can never be accepted (the allow-list is typed to RS256, PS256 and ES256), and the key's own
`alg` and type must agree with the header, so a public key can never act as an HMAC secret.
"""

from __future__ import annotations

from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from agent_platform.security.errors import AuthenticationError
from agent_platform.security.jwks import JwksCache

ASYMMETRIC = frozenset({"RS256", "PS256", "ES256"})
_KEY_TYPES = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC"}
_MAX_HEADER_BYTES = 1024


class TokenVerifier:
    """Verifies tokens of one issuer for one audience."""

    def __init__(
        self,
        keys: JwksCache,
        *,
        issuer: str,
        audience: str,
        algorithms: list[str],
        leeway_s: int = 30,
        max_token_bytes: int = 8192,
        allowed_clients: list[str] | None = None,
    ) -> None:
        self.keys, self.issuer, self.audience = keys, issuer, audience
        self.algorithms = [a for a in algorithms if a in ASYMMETRIC]
        self.leeway_s, self.max_token_bytes = leeway_s, max_token_bytes
        self.allowed_clients = set(allowed_clients or [])
        self.claims_registry = jwt.JWTClaimsRegistry(
            leeway=leeway_s,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or AuthenticationError naming (for the audit log) what failed."""
        if len(token) > self.max_token_bytes:
            raise AuthenticationError(f"token longer than {self.max_token_bytes} bytes")
        if token.count(".") != 2:
            raise AuthenticationError("malformed token: not a compact JWS")
        if len(token.split(".", 1)[0]) > _MAX_HEADER_BYTES:
            raise AuthenticationError(f"token header longer than {_MAX_HEADER_BYTES} bytes")
        try:
            header = jws.extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, TypeError, UnicodeError) as exc:
            raise AuthenticationError(f"malformed token header: {type(exc).__name__}") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.algorithms:
            raise AuthenticationError(f"algorithm {str(alg)[:16]!r} not allowed")
        if not isinstance(kid, str) or not 0 < len(kid) <= 256:
            raise AuthenticationError("token names no valid key id")
        if "crit" in header or "jku" in header or "x5u" in header or "jwk" in header:
            raise AuthenticationError("token header carries key references or crit")
        jwk = self.keys.key(kid)
        if jwk is None:
            raise AuthenticationError(f"unknown key id {kid[:64]!r}")
        if jwk.get("kty") != _KEY_TYPES[alg] or jwk.get("alg", alg) != alg:
            raise AuthenticationError(f"key {kid[:64]!r} is not a {alg} key")
        key = (RSAKey if jwk["kty"] == "RSA" else ECKey).import_key(jwk)
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
            self.claims_registry.validate(decoded.claims)
        except JoseError as exc:
            claim = getattr(exc, "claim", None)
            named = f" ({claim})" if claim else ""
            raise AuthenticationError(f"{exc.error}{named}: {exc.description or ''}"[:200]) from exc
        except (ValueError, TypeError) as exc:
            raise AuthenticationError(f"invalid token: {type(exc).__name__}") from exc
        claims = dict(decoded.claims)
        self._check_times(claims)
        if self.allowed_clients:
            client = claims.get("azp") or claims.get("client_id")
            if client not in self.allowed_clients:
                raise AuthenticationError(f"client {str(client)[:64]!r} is not allowed")
        return claims

    def _check_times(self, claims: dict[str, Any]) -> None:
        for name in ("exp", "nbf", "iat"):
            if name in claims and not isinstance(claims[name], int | float):
                raise AuthenticationError(f"claim {name} is not a number")
