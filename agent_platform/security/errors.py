"""What authentication and authorization refuse with. The gateway maps them to 401, 403 and 503;
the public message never says why a credential failed (the audit record does)."""

from __future__ import annotations


class SecurityError(Exception):
    """Base class of authentication and authorization refusals."""


class AuthenticationError(SecurityError):
    """The credentials are missing or invalid. `reason` goes to the audit log, never the wire."""

    public_message = "authentication required: send a valid bearer token or API key"

    def __init__(self, reason: str) -> None:
        super().__init__(self.public_message)
        self.reason = reason


class AuthenticationUnavailableError(SecurityError):
    """The provider's keys cannot be fetched and the cached ones expired: fail closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            "authentication is temporarily unavailable: the identity provider's signing keys "
            "cannot be refreshed"
        )
        self.reason = reason


class AccessDeniedError(SecurityError, PermissionError):
    """The policy refused `action`; `missing` names what the caller lacks (not the policy)."""

    def __init__(self, action: str, missing: list[str], *, bundle: str | None = None) -> None:
        needs = "; ".join(missing) or f"permission {action}"
        super().__init__(f"{action}: denied, missing {needs}")
        self.action, self.missing, self.bundle = action, missing, bundle


class SessionRefusedError(AccessDeniedError):
    """A sign-in session over the concurrent limit, idle too long, or revoked."""

    def __init__(self, message: str) -> None:
        SecurityError.__init__(self, message)
        self.action, self.missing, self.bundle = "session", [message], None


class PolicyUnavailableError(SecurityError):
    """No policy bundle could be loaded: every decision fails closed (never allow-all)."""
