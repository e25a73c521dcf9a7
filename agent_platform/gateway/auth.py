"""Authentication and policy at the gateway: a request hook (see `middleware.RequestHook`) that
runs before every /v1 route.

It turns the Authorization header into an `Identity` (on `request.state.identity`), maps the
route to a policy action, asks the policy with the tenant, the user the request acts for and the
agent, and refuses with 401, 403 or 503. Every refusal is an audit record carrying the policy
bundle's hash; the reason a credential failed goes to the audit log, never to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import FastAPI, Request

from agent_platform.audit import AuditLogError, open_audit_log
from agent_platform.security.authn import Authenticator
from agent_platform.security.authorize import explain, policy_engine, policy_input
from agent_platform.security.errors import (
    AccessDeniedError,
    AuthenticationError,
    AuthenticationUnavailableError,
    SessionRefusedError,
)
from agent_platform.security.identity import Identity
from agent_platform.settings import Settings

logger = logging.getLogger(__name__)
POLICY_RELOAD_S = 5.0
ROUTE_ACTIONS = {
    ("POST", "/v1/chat/completions"): "agents.run",
    ("POST", "/v1/agents/{agent}/runs"): "agents.run",
    ("GET", "/v1/agents/{agent}"): "agents.read",
    ("GET", "/v1/sessions/{session_id}"): "sessions.read",
    ("POST", "/v1/sessions/{session_id}/rollback"): "sessions.rollback",
}
_UNAUTHENTICATED = {"subject": "unauthenticated", "kind": "anonymous", "verified": False}


class GatewaySecurity:
    """The hook, plus what /readyz and the agent view report about security."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.authenticator = Authenticator(settings)
        self.engine = policy_engine(settings)
        self.audit = open_audit_log(settings)
        self._reloaded = time.monotonic()
        if not settings.auth_required:
            logger.warning(
                "authentication is OFF (profile %s): requests without a token are served as the "
                "anonymous identity, which the local policy allows; set AGENT_PLATFORM_AUTH__"
                "REQUIRED=true with __ISSUER and __AUDIENCE to require sign-in",
                settings.profile,
            )
        if self.engine.error:
            logger.error("authorization policy: %s", self.engine.error)

    def readiness(self) -> tuple[list[str], list[str]]:
        """(reasons the worker is not ready, warnings that do not stop it)."""
        self.engine.reload()
        failures = []
        if self.engine.error:
            failures.append(
                f"authorization policy unusable ({self.engine.error}); "
                + ("the last good bundle stays active" if self.engine.digest else "none loaded")
            )
        warnings = []
        if not self.settings.auth_required:
            warnings.append(
                "authentication off (local profile): anonymous callers are served under the "
                "local policy"
            )
        return failures, warnings

    def _record(self, kind: str, actor: dict[str, Any], request: Request, **fields: Any) -> None:
        try:
            self.audit.record(
                kind,
                actor=actor,
                policy_bundle=self.engine.digest,
                method=request.method,
                path=request.url.path,
                client=request.client.host if request.client else None,
                trace_id=getattr(request.state, "trace_id", None),
                **fields,
            )
        except AuditLogError:
            logger.exception("audit log unavailable; the request is refused regardless")

    async def _maybe_reload(self) -> None:
        if time.monotonic() - self._reloaded > POLICY_RELOAD_S:
            self._reloaded = time.monotonic()
            await asyncio.to_thread(self.engine.reload)

    async def __call__(self, request: Request) -> None:
        await self._maybe_reload()
        header = request.headers.get("authorization")
        try:
            identity = await asyncio.to_thread(self.authenticator.authenticate, header)
        except (AuthenticationError, AuthenticationUnavailableError) as exc:
            kind = "auth.failure" if isinstance(exc, AuthenticationError) else "auth.unavailable"
            await asyncio.to_thread(
                self._record, kind, _UNAUTHENTICATED, request, action="authenticate",
                outcome="refused", reason=exc.reason,
            )  # fmt: skip
            raise
        except SessionRefusedError as exc:
            await asyncio.to_thread(
                self._record, "session.refused", _UNAUTHENTICATED, request,
                action="authenticate", outcome="refused", reason=str(exc),
            )  # fmt: skip
            raise
        request.state.identity = identity
        await self._authorize(request, identity)

    async def _authorize(self, request: Request, identity: Identity) -> None:
        route = request.scope.get("route")
        action = ROUTE_ACTIONS.get((request.method, getattr(route, "path", "")), "unknown")
        tenant, user = await _tenant_and_user(request, getattr(route, "path", ""))
        resource = {
            "type": "agent",
            "name": request.path_params.get("agent") or self.settings.serving_agent,
            "user": user,
        }
        body = policy_input(
            identity, action, settings=self.settings, tenant=tenant, resource=resource
        )
        decision = await asyncio.to_thread(self.engine.decide, body)
        request.state.policy_bundle = decision.bundle
        if decision.allow:
            return
        missing = explain(decision, action, tenant)
        await asyncio.to_thread(
            self._record, "authz.denial", identity.as_record(), request, action=action,
            outcome="denied", tenant=tenant, resource=resource["name"], missing=missing,
        )  # fmt: skip
        raise AccessDeniedError(action, missing, bundle=decision.bundle)


async def _tenant_and_user(request: Request, template: str) -> tuple[str | None, str | None]:
    """The tenant the request is for and the user it acts for, exactly as the route will read
    them (only the native runs route lets the body's `tenant` override the header)."""
    tenant = request.headers.get("x-tenant")
    user = request.query_params.get("user")
    if request.method == "POST":
        try:
            body = await request.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            runs = template == "/v1/agents/{agent}/runs"
            if runs and isinstance(body.get("tenant"), str) and body["tenant"]:
                tenant = body["tenant"]
            if isinstance(body.get("user"), str):
                user = body["user"]
    return tenant, user


def install_security(app: FastAPI, settings: Settings) -> GatewaySecurity:
    """Add the hook to `app` (before any other hook) and keep it on `app.state.security`."""
    security = GatewaySecurity(settings)
    app.state.hooks.insert(0, security)
    app.state.security = security
    return security
