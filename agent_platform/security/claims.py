"""From verified claims to an `Identity`: Keycloak's layout by default, configurable per provider.

Keycloak puts the user name in `preferred_username`, realm roles in `realm_access.roles`, client
roles in `resource_access.<client>.roles`, group paths in `groups` and the sign-in session in
`sid`. Tenant memberships come from the `tenants` claim when the provider sets one (a Keycloak
user attribute mapped into the token) and from groups under `/tenants/` (`/tenants/acme` makes
the caller a member of `acme`); both names are settings.
"""

from __future__ import annotations

from typing import Any

from agent_platform.security.identity import Identity
from agent_platform.settings import AuthSettings


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (`realm_access.roles`), or None."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str) and 0 < len(v) <= 128]
    return []


def identity_from_claims(claims: dict[str, Any], auth: AuthSettings) -> Identity:
    """The identity a verified token describes."""
    client = auth.client_id or auth.audience or ""
    roles: set[str] = set()
    for path in auth.roles_claims:
        roles.update(_strings(claim_at(claims, path.replace("{client}", client))))
    tenants = set(_strings(claim_at(claims, auth.tenants_claim))) if auth.tenants_claim else set()
    prefix = auth.tenant_group_prefix
    for group in _strings(claim_at(claims, auth.groups_claim)):
        if prefix and group.startswith(prefix):
            tenant = group[len(prefix) :].split("/", 1)[0]
            if tenant:
                tenants.add(tenant)
    username = claim_at(claims, auth.username_claim)
    username = username if isinstance(username, str) else None
    authorized_party = claims.get("azp") or claims.get("client_id")
    subject = str(claims["sub"])
    service = (username or "").startswith("service-account-")  # Keycloak's service accounts
    sid = claims.get("sid")
    return Identity(
        subject=subject,
        kind="service" if service else "user",
        verified=True,
        roles=frozenset(roles),
        tenants=frozenset(tenants),
        username=username,
        issuer=str(claims.get("iss")),
        session_id=sid if isinstance(sid, str) else None,
        client_id=authorized_party if isinstance(authorized_party, str) else None,
    )
