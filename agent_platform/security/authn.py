"""Authentication: an `Authorization` header in, an `Identity` out (or a refusal).

Bearer JWTs from the configured issuer, or service-account API keys (`ap_...`). Without a
header, the local profile with authentication not required serves the anonymous identity (the
local policy allows it, and the gateway says so at start and in /readyz); otherwise it is a 401.
"""

from __future__ import annotations

from agent_platform.security.api_keys import PREFIX, ApiKeyStore, open_api_key_store
from agent_platform.security.claims import identity_from_claims
from agent_platform.security.errors import AuthenticationError
from agent_platform.security.identity import Identity
from agent_platform.security.jwks import JwksCache
from agent_platform.security.sessions import SessionTracker, open_session_tracker
from agent_platform.security.tokens import TokenVerifier
from agent_platform.settings import Settings


def api_key_store(settings: Settings) -> ApiKeyStore:
    return open_api_key_store(settings)


class Authenticator:
    """Turns credentials into identities for one deployment's settings."""

    def __init__(self, settings: Settings, *, sessions: SessionTracker | None = None) -> None:
        auth = settings.auth
        self.settings, self.required = settings, settings.auth_required
        if self.required and not (auth.issuer and auth.audience):
            raise ValueError(
                "authentication is required: set AGENT_PLATFORM_AUTH__ISSUER and "
                "AGENT_PLATFORM_AUTH__AUDIENCE"
            )
        self.keys: JwksCache | None = None
        self.verifier: TokenVerifier | None = None
        if auth.issuer and auth.audience:
            self.keys = JwksCache(
                auth.issuer,
                max_age_s=auth.jwks_max_age_s,
                refetch_interval_s=auth.jwks_refetch_interval_s,
                timeout_s=auth.http_timeout_s,
            )
            self.verifier = TokenVerifier(
                self.keys,
                issuer=auth.issuer,
                audience=auth.audience,
                algorithms=list(auth.algorithms),
                leeway_s=auth.leeway_s,
                max_token_bytes=auth.max_token_bytes,
                allowed_clients=auth.allowed_clients,
            )
        self.api_keys = api_key_store(settings)
        self.sessions = sessions or open_session_tracker(settings)

    def authenticate(self, authorization: str | None) -> Identity:
        """The caller's identity; AuthenticationError (401), AuthenticationUnavailableError
        (503) or SessionRefusedError (403) otherwise."""
        if not authorization:
            if self.required:
                raise AuthenticationError("no credentials")
            return Identity.anonymous()
        if len(authorization) > self.settings.auth.max_token_bytes + 16:
            raise AuthenticationError("Authorization header too long")
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthenticationError("Authorization is not a bearer credential")
        if credential.startswith(PREFIX):
            return self.api_keys.authenticate(credential)
        if self.verifier is None:
            if not self.required:
                # Local profile without sign-in: OpenAI-style clients must send some key
                # (`api_key="unused"`); with no issuer to verify it, the caller is the anonymous
                # identity it would be without the header (API keys above are still checked).
                return Identity.anonymous()
            raise AuthenticationError("no token issuer is configured")
        identity = identity_from_claims(self.verifier.verify(credential), self.settings.auth)
        if identity.session_id:
            self.sessions.touch(identity.subject, identity.session_id)
        return identity

    def status(self) -> dict[str, object]:
        return {
            "required": self.required,
            "issuer": self.settings.auth.issuer,
            "jwks": self.keys.status() if self.keys else None,
        }
