"""Authorisation of a request against its tenant, and the resource guard, both deliberately simple.

Authorisation: the tenant must be registered (`agent-platform ingest` registers it); and when an
explicit access list names users for the tenant (a mapping, or a JSON file given by path, re-read
when it changes), the caller must be one of them::

    {"tenants": {"acme": {"users": ["alice", "bob"]}}}

Who may use a tenant through the gateway and the CLI is the Rego policy's decision
(`agent_platform.security`, policies/); the runtime no longer reads `<home>/runtime/access.json`
by default, so an embedding application can still pass its own list.

Resource guard: the tenant must have a knowledge index with at least one chunk (remembered for
`INDEX_CHECK_TTL_S` once seen), and at least one model of the route must not have an open circuit.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from agent_platform.runtime.circuit_breaker import BreakerState, CircuitBreakerRegistry
from agent_platform.runtime.errors import (
    NotAuthorizedError,
    ResourceUnavailableError,
    UnknownTenantError,
)
from agent_platform.tenants import TenantRegistry
from agent_platform.vectorstore.base import VectorStore

INDEX_CHECK_TTL_S = 30.0


class AccessPolicy:
    """Which users may use which tenant: a mapping, or a JSON file read when it changes."""

    def __init__(
        self, users: Mapping[str, Iterable[str]] | None = None, *, path: Path | None = None
    ) -> None:
        self._fixed = {t: frozenset(u) for t, u in (users or {}).items()}
        self.path = path
        self._loaded: tuple[float, dict[str, frozenset[str]]] = (-1.0, {})
        self._lock = threading.Lock()

    def _from_file(self) -> dict[str, frozenset[str]]:
        if self.path is None:
            return {}
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return {}
        with self._lock:
            if self._loaded[0] != mtime:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                tenants = data.get("tenants", {}) if isinstance(data, dict) else {}
                parsed = {t: frozenset(v.get("users", [])) for t, v in tenants.items()}
                self._loaded = (mtime, parsed)
            return self._loaded[1]

    def allowed_users(self, tenant: str) -> frozenset[str] | None:
        """The users allowed on `tenant`, or None when every user is."""
        if tenant in self._fixed:
            return self._fixed[tenant]
        return self._from_file().get(tenant)


class Gatekeeper:
    """Authorises requests and guards the resources they need."""

    def __init__(
        self,
        registry: TenantRegistry,
        policy: AccessPolicy,
        store: VectorStore,
        breakers: CircuitBreakerRegistry,
    ) -> None:
        self.registry = registry
        self.policy = policy
        self.store = store
        self.breakers = breakers
        self._indexed: dict[str, float] = {}

    def authorise(self, tenant: str, user: str) -> None:
        if tenant not in self.registry.tenants():
            raise UnknownTenantError(
                f"tenant: unknown tenant {tenant!r}; register and index it with "
                f"`agent-platform ingest --tenant {tenant} DIR`",
                phase="authorise",
            )
        allowed = self.policy.allowed_users(tenant)
        if allowed is not None and user not in allowed:
            raise NotAuthorizedError(
                f"user: {user!r} is not authorised for tenant {tenant!r}", phase="authorise"
            )

    def guard(self, tenant: str, models: list[str]) -> None:
        now = time.monotonic()
        if self._indexed.get(tenant, 0.0) <= now:
            if self.store.count(tenant) == 0:
                raise ResourceUnavailableError(
                    f"tenant {tenant!r} has no knowledge index yet; run "
                    f"`agent-platform ingest --tenant {tenant} DIR`",
                    phase="authorise",
                )
            self._indexed[tenant] = now + INDEX_CHECK_TTL_S
        breakers = [self.breakers.get(m) for m in models]
        if breakers and all(b.state is BreakerState.OPEN for b in breakers):
            wait = min(b.retry_after_s() for b in breakers)
            raise ResourceUnavailableError(
                f"every model of the route {models} has an open circuit; retry in {wait:.1f} s",
                phase="authorise",
            )
