"""Decisions from an OPA server (`AGENT_PLATFORM_AUTHZ__OPA_URL`) instead of the embedded
evaluator: the same `policies/` bundle, deployed to OPA, asked through its Data API
(`POST <url>/v1/data/agent_platform/authz/decision` with `{"input": ...}`).

It fails closed: an unreachable server, a timeout, an HTTP error, a reply that is not JSON or a
decision OPA does not define (the bundle is not loaded there) is `PolicyUnavailableError` (503
at the gateway, an error line on the CLI), never an allow. The bundle hash recorded with each
decision is the local `policies/` directory's, the bundle the deployment ships to OPA; readiness
fails while OPA's `/health` does not answer 200.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from agent_platform.security.errors import PolicyUnavailableError
from agent_platform.security.policy import (
    Decision,
    DecisionCache,
    PolicyError,
    _to_decision,
    read_bundle,
)

DECISION_PATH = "/v1/data/agent_platform/authz/decision"


class OpaPolicyEngine:
    """The `PolicyEngine` interface over an OPA server; thread-safe (httpx's pooled client)."""

    def __init__(
        self, url: str, directory: Path, *, timeout_s: float = 0.5, cache_s: float = 2.0
    ) -> None:
        self.url = url.rstrip("/")
        self.directory = Path(directory)
        self.digest: str | None = None
        self.files: dict[str, str] = {}
        self.error: str | None = None
        self._client = httpx.Client(timeout=timeout_s)
        self._cache = DecisionCache(cache_s)
        self.reload()

    def reload(self) -> bool:
        """Re-read the bundle's hash and check that OPA answers; False (and `error`) if not."""
        try:
            digest, files = read_bundle(self.directory)
        except (PolicyError, OSError, UnicodeError) as exc:
            self.error = str(exc)
            return False
        if digest != self.digest:
            self._cache.clear()
        self.digest, self.files = digest, files
        try:
            healthy = self._client.get(f"{self.url}/health").status_code == 200
        except httpx.HTTPError as exc:
            self.error = f"OPA server {self.url} unreachable ({type(exc).__name__})"
            return False
        self.error = None if healthy else f"OPA server {self.url} is not healthy"
        return healthy

    def decide(self, input_value: dict[str, Any]) -> Decision:
        digest = self.digest
        if digest is None:
            raise PolicyUnavailableError(f"no authorization policy is loaded: {self.error}")
        key = DecisionCache.key(input_value)
        cached = self._cache.get(key, digest)
        if cached is not None:
            return cached
        try:
            response = self._client.post(self.url + DECISION_PATH, json={"input": input_value})
        except httpx.HTTPError as exc:
            raise PolicyUnavailableError(
                f"the OPA server is unavailable: {type(exc).__name__} at {self.url}"
            ) from exc
        if response.status_code != 200:
            raise PolicyUnavailableError(
                f"the OPA server is unavailable: HTTP {response.status_code} from {self.url}"
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise PolicyUnavailableError("the OPA server is unavailable: not JSON") from exc
        if not isinstance(body, dict) or "result" not in body:
            raise PolicyUnavailableError(
                "the OPA server is unavailable: it does not define "
                "data.agent_platform.authz.decision (load the policies/ bundle there)"
            )
        decision = _to_decision(body["result"], digest)
        self._cache.put(key, decision)
        return decision

    def run_tests(self) -> dict[str, bool]:
        raise PolicyUnavailableError(
            "policy unit tests run on the embedded evaluator (`auth policy-test` without "
            "AGENT_PLATFORM_AUTHZ__OPA_URL) or with `opa test policies/`"
        )

    def close(self) -> None:
        self._client.close()
