"""The provider's signing keys: OIDC discovery, then the JWKS, cached and refetched.

Keys are trusted for `max_age_s` after a successful fetch. A token naming an unknown `kid`
triggers a refetch at most once per `refetch_interval_s`, so a key rotation at the provider needs
no restart and a flood of made-up kids cannot turn into a flood of requests to the provider. When
the provider is unreachable, cached keys keep working until their age runs out; after that every
request fails closed with `AuthenticationUnavailableError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from agent_platform.security.errors import AuthenticationUnavailableError

_MAX_KEYS = 64


class JwksCache:
    """Signing keys of one issuer, by `kid`."""

    def __init__(
        self,
        issuer: str,
        *,
        max_age_s: float = 3600.0,
        refetch_interval_s: float = 30.0,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.max_age_s, self.refetch_interval_s = max_age_s, refetch_interval_s
        self.timeout_s, self.clock = timeout_s, clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._jwks_uri: str | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def _get_json(self, url: str) -> dict[str, Any]:
        response = httpx.get(url, timeout=self.timeout_s, follow_redirects=False)
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError(f"{url}: not a JSON object")
        return body

    def _fetch(self) -> None:
        self._attempted_at = self.clock()
        if self._jwks_uri is None:
            discovery = self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if str(discovery.get("issuer", "")).rstrip("/") != self.issuer:
                raise ValueError("discovery: the document names a different issuer")
            self._jwks_uri = str(discovery["jwks_uri"])
        document = self._get_json(self._jwks_uri)
        keys = {
            str(k["kid"]): k
            for k in document.get("keys", [])[:_MAX_KEYS]
            if isinstance(k, dict) and k.get("kid") and k.get("use", "sig") == "sig"
        }
        self._keys, self._fetched_at = keys, self.clock()
        self.fetches += 1

    def _try_fetch(self) -> str | None:
        try:
            self._fetch()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def _expired(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at > self.max_age_s

    def _may_retry(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.refetch_interval_s

    def key(self, kid: str) -> dict[str, Any] | None:
        """The JWK for `kid`, refetching when the keys are stale or the kid is new; None when
        the provider does not publish it. Raises when no unexpired keys can be had."""
        with self._lock:
            now = self.clock()
            if self._expired(now):
                error = self._try_fetch() if self._may_retry(now) or not self._keys else "retry"
                if self._expired(self.clock()):
                    raise AuthenticationUnavailableError(f"JWKS of {self.issuer}: {error}")
            elif kid not in self._keys and self._may_retry(now):
                self._try_fetch()  # a failed refetch keeps the unexpired keys
            return self._keys.get(kid)

    def status(self) -> dict[str, Any]:
        """For readiness: whether usable keys are cached and how old they are."""
        now = self.clock()
        return {
            "keys": len(self._keys),
            "age_s": None if self._fetched_at is None else round(now - self._fetched_at, 1),
            "expired": self._expired(now),
        }
