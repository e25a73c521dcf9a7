"""Asking the policy: the input every door builds, the denial it raises, the audit it records.

`authorize_operator_action` is the one hook operator commands (prompt approve/promote, model
promote, ...) call: it asks the policy, records the decision in the audit log with the policy
bundle's hash, and raises `AccessDeniedError` naming the action and what the caller lacks.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from agent_platform.security.errors import AccessDeniedError
from agent_platform.security.identity import Identity
from agent_platform.security.opa import OpaPolicyEngine
from agent_platform.security.policy import Decision, PolicyEngine
from agent_platform.settings import Settings, get_settings

logger = logging.getLogger(__name__)
Engine = PolicyEngine | OpaPolicyEngine


def policy_input(
    identity: Identity,
    action: str,
    *,
    settings: Settings,
    tenant: str | None = None,
    resource: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The policy's input document (None values left out: Rego's `not x` needs undefined)."""
    body: dict[str, Any] = {
        "action": action,
        "profile": settings.profile,
        "auth_required": settings.auth_required,
        "identity": {
            "subject": identity.subject,
            "username": identity.username or identity.subject,
            "kind": identity.kind,
            "verified": identity.verified,
            "roles": sorted(identity.roles),
            "tenants": sorted(identity.tenants),
        },
        "resource": {k: v for k, v in (resource or {}).items() if v is not None},
    }
    if tenant is not None:
        body["tenant"] = tenant
    return body


def explain(decision: Decision, action: str, tenant: str | None) -> list[str]:
    """What the caller lacks, in words (from the policy's fixed codes)."""
    words = {
        "permission": f"permission {action}"
        + (f" (granted by roles: {', '.join(decision.grantors)})" if decision.grantors else ""),
        "tenant_membership": f"membership of tenant {tenant}",
        "act_for_user": "permission to act for another user (sessions.read_any)",
        "clearance": "clearance for restricted resources (operator, admin or security_team_lead)",
    }
    return [words.get(code, code) for code in decision.missing] or [f"permission {action}"]


@functools.cache
def _engine(directory: str, cache_s: float) -> PolicyEngine:
    return PolicyEngine(Path(directory), cache_s=cache_s)


@functools.cache
def _opa_engine(url: str, directory: str, timeout_s: float, cache_s: float) -> OpaPolicyEngine:
    return OpaPolicyEngine(url, Path(directory), timeout_s=timeout_s, cache_s=cache_s)


def local_policy_engine(settings: Settings) -> PolicyEngine:
    """The embedded evaluator for the settings' policy directory (reloaded when files change)."""
    engine = _engine(str(settings.policy_dir), settings.authz.decision_cache_s)
    engine.reload()
    return engine


def policy_engine(settings: Settings) -> Engine:
    """The process's engine: an OPA server's when `authz.opa_url` is set, else embedded."""
    authz = settings.authz
    if not authz.opa_url:
        return local_policy_engine(settings)
    engine = _opa_engine(
        authz.opa_url, str(settings.policy_dir), authz.opa_timeout_s, authz.decision_cache_s
    )
    engine.reload()
    return engine


def authorize_operator_action(
    identity: Identity,
    action: str,
    resource: str | dict[str, Any] | None = None,
    *,
    tenant: str | None = None,
    settings: Settings | None = None,
) -> Decision:
    """Ask the policy whether `identity` may do `action` to `resource`; audit the decision.

    Production refuses unverified identities (the `--as NAME` development identity) outright.
    Returns the decision (its `roles` are the roles that granted it, for approval records);
    raises AccessDeniedError when denied.
    """
    from agent_platform.audit import open_audit_log

    settings = settings or get_settings()
    if isinstance(resource, str):
        resource = {"name": resource}
    engine = policy_engine(settings)
    if settings.profile == "production" and not identity.verified:
        decision = Decision(allow=False, missing=("verified_identity",), bundle=engine.digest)
        missing = ["a verified identity (production refuses --as; use AGENT_PLATFORM_TOKEN)"]
    else:
        decision = engine.decide(
            policy_input(identity, action, settings=settings, tenant=tenant, resource=resource)
        )
        missing = [] if decision.allow else explain(decision, action, tenant)
    open_audit_log(settings).record(
        "authz.decision" if decision.allow else "authz.denial",
        actor=identity.as_record(),
        action=action,
        outcome="allowed" if decision.allow else "denied",
        tenant=tenant,
        resource=(resource or {}).get("name"),
        policy_bundle=decision.bundle,
        granted_roles=list(decision.roles),
        missing=missing,
    )
    if not decision.allow:
        raise AccessDeniedError(action, missing, bundle=decision.bundle)
    return decision
