"""Who is calling: the identity every gateway route, operator action and audit record carries."""

from agent_platform.security.identity import Identity, IdentityKind

__all__ = ["Identity", "IdentityKind"]
