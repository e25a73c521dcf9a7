"""Who is calling and what they may do: the identity every gateway route, operator action and
audit record carries; authentication (OIDC bearer tokens, API keys, session limits) and
authorization (the Rego policy bundle under policies/)."""

from agent_platform.security.errors import (
    AccessDeniedError,
    AuthenticationError,
    AuthenticationUnavailableError,
    PolicyUnavailableError,
    SecurityError,
    SessionRefusedError,
)
from agent_platform.security.identity import Identity, IdentityKind

__all__ = [
    "AccessDeniedError",
    "AuthenticationError",
    "AuthenticationUnavailableError",
    "Identity",
    "IdentityKind",
    "PolicyUnavailableError",
    "SecurityError",
    "SessionRefusedError",
]
