"""The caller's identity, as authentication established it and authorization consumes it.

One frozen value for every door (a bearer token at the gateway, an API key of a service account,
a token or a development name on the CLI), so the policy and the audit log never need to know
how the caller signed in, only whether the identity was verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

IdentityKind = Literal["user", "service", "development", "anonymous"]


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated (or, in the local profile, declared) caller.

    `verified` is False only for identities nobody checked: the local profile's `--as NAME`
    development identity and the anonymous caller of a gateway running without authentication.
    Approvals record it, and production refuses unverified identities for operator actions.
    """

    subject: str
    kind: IdentityKind = "user"
    verified: bool = True
    roles: frozenset[str] = field(default_factory=frozenset)
    tenants: frozenset[str] = field(default_factory=frozenset)
    username: str | None = None
    issuer: str | None = None
    session_id: str | None = None
    client_id: str | None = None

    @property
    def display_name(self) -> str:
        return self.username or self.subject

    @property
    def actor(self) -> str:
        """The name approvals and release records keep: the verified subject (stable at the
        issuer, unlike a username), or an unverified identity's declared name (which the local
        profile checks against the committed roles file)."""
        return self.subject if self.verified else (self.username or self.subject)

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @classmethod
    def development(cls, name: str, roles: frozenset[str] = frozenset()) -> Identity:
        """The local profile's declared identity (`--as NAME`): recorded as unverified."""
        return cls(
            subject=f"dev:{name}", username=name, kind="development", verified=False, roles=roles
        )

    @classmethod
    def anonymous(cls) -> Identity:
        return cls(subject="anonymous", kind="anonymous", verified=False)

    def as_record(self) -> dict[str, object]:
        """The fields an audit record keeps (no token, no claims beyond these)."""
        return {
            "subject": self.subject,
            "username": self.username,
            "kind": self.kind,
            "verified": self.verified,
            "roles": sorted(self.roles),
            "issuer": self.issuer,
            "session_id": self.session_id,
        }
