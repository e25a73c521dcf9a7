"""Green's health over a sliding window, from the gateway's request metrics.

Two sources give the same `VersionHealth`: the gateway's own `/metrics` (one process, locally:
the controller keeps cumulative samples and differences them over the window) and the Prometheus
HTTP API (every replica, in production: `increase` and `histogram_quantile` over the window).
Only agent requests count (chat completions and runs); 5xx answers are errors, 4xx are callers'.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

DURATION = "agent_platform_http_request_duration_seconds"
AGENT_ROUTES = ("/v1/chat/completions", "/v1/agents/{agent}/runs")
ROUTES_REGEX = "/v1/chat/completions|/v1/agents/.+/runs"  # the same routes, as PromQL matches

Sample = tuple[float, dict[str, Any]]  # (time, cumulative snapshot) as the controller keeps it


class MetricsUnavailableError(RuntimeError):
    """The metrics could not be read; the controller holds (never shifts traffic blind)."""


@dataclass(frozen=True)
class VersionHealth:
    requests: float
    errors: float
    p95_ms: float | None  # None without requests

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def describe(self) -> str:
        p95 = f"{self.p95_ms:.0f} ms" if self.p95_ms is not None else "n/a"
        return (
            f"{int(self.requests)} requests, {int(self.errors)} errors "
            f"({self.error_rate:.2%}), p95 {p95}"
        )


# --- cumulative snapshots (the scrape source) ----------------------------------------------------
def snapshot(exposition: str, version: str) -> dict[str, Any]:
    """Cumulative counts of `version`'s agent requests: total, 5xx, and histogram buckets."""
    requests = errors = 0.0
    buckets: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        if not family.name.startswith(DURATION):  # with or without its TYPE line
            continue
        for sample in family.samples:
            labels = sample.labels
            if labels.get("agent_version") != version or labels.get("route") not in AGENT_ROUTES:
                continue
            if sample.name == f"{DURATION}_count":
                requests += sample.value
                if labels.get("status", "").startswith("5"):
                    errors += sample.value
            elif sample.name == f"{DURATION}_bucket":
                buckets[labels["le"]] = buckets.get(labels["le"], 0.0) + sample.value
    return {"requests": requests, "errors": errors, "buckets": buckets}


def window(samples: list[Sample], now: float, window_s: float) -> VersionHealth:
    """The health between the newest sample and the newest one at least `window_s` older (the
    oldest kept, while the rollout is younger than the window); a counter that went down (the
    gateway restarted) counts from zero."""
    if not samples:
        return VersionHealth(0, 0, None)
    latest = samples[-1][1]
    base = samples[0][1]
    for at, sample in samples:
        if at <= now - window_s:
            base = sample
    if latest["requests"] < base["requests"]:
        base = {"requests": 0.0, "errors": 0.0, "buckets": {}}
    buckets = {le: count - base["buckets"].get(le, 0.0) for le, count in latest["buckets"].items()}
    requests = latest["requests"] - base["requests"]
    return VersionHealth(requests, latest["errors"] - base["errors"], quantile(0.95, buckets))


def prune(samples: list[Sample], now: float, window_s: float) -> list[Sample]:
    """Keep the samples inside the window and the newest one before it (the window's base)."""
    older = [s for s in samples if s[0] <= now - window_s]
    return ([older[-1]] if older else []) + [s for s in samples if s[0] > now - window_s]


def quantile(q: float, buckets: dict[str, float]) -> float | None:
    """Prometheus' `histogram_quantile` over cumulative buckets, in milliseconds."""
    bounds = sorted((float(le), count) for le, count in buckets.items())
    if not bounds or bounds[-1][1] <= 0:
        return None
    rank = q * bounds[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in bounds:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound * 1000  # as Prometheus: the highest finite bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 0
            return (lower_bound + (bound - lower_bound) * share) * 1000
        lower_bound, lower_count = bound, count
    return lower_bound * 1000


# --- sources -----------------------------------------------------------------------------------
class MetricsSource(ABC):
    """Reads green's health; `sample` returns a cumulative snapshot when the source needs the
    controller to keep the window (the scrape), or None when the source computes it itself."""

    @abstractmethod
    def sample(self, version: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def health(
        self, version: str, samples: list[Sample], now: float, window_s: float
    ) -> VersionHealth: ...


class GatewayScrape(MetricsSource):
    def __init__(self, gateway_url: str, timeout_s: float = 5.0) -> None:
        self.url, self.timeout_s = gateway_url.rstrip("/"), timeout_s

    def sample(self, version: str) -> dict[str, Any]:
        try:
            response = httpx.get(f"{self.url}/metrics", timeout=self.timeout_s)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise MetricsUnavailableError(f"gateway metrics at {self.url}: {exc}") from None
        return snapshot(response.text, version)

    def health(
        self, version: str, samples: list[Sample], now: float, window_s: float
    ) -> VersionHealth:
        return window(samples, now, window_s)


class PrometheusQuery(MetricsSource):
    """Every gateway replica as Prometheus scrapes them (the production source)."""

    def __init__(self, prometheus_url: str, timeout_s: float = 5.0) -> None:
        self.url, self.timeout_s = prometheus_url.rstrip("/"), timeout_s

    def sample(self, version: str) -> None:
        return None

    def _query(self, promql: str) -> list[dict[str, Any]]:
        try:
            response = httpx.get(
                f"{self.url}/api/v1/query", params={"query": promql}, timeout=self.timeout_s
            )
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise MetricsUnavailableError(f"prometheus at {self.url}: {exc}") from None
        if body.get("status") != "success":
            raise MetricsUnavailableError(f"prometheus at {self.url}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def health(
        self, version: str, samples: list[Sample], now: float, window_s: float
    ) -> VersionHealth:
        quoted = version.replace("\\", "\\\\").replace('"', '\\"')  # a PromQL string
        selector = f'{{agent_version="{quoted}",route=~"{ROUTES_REGEX}"}}'
        span = f"[{max(int(window_s), 1)}s]"
        by_status = self._query(f"sum by (status) (increase({DURATION}_count{selector}{span}))")
        requests = sum(float(r["value"][1]) for r in by_status)
        errors = sum(
            float(r["value"][1]) for r in by_status if r["metric"].get("status", "").startswith("5")
        )
        p95 = self._query(
            f"histogram_quantile(0.95, sum by (le) (rate({DURATION}_bucket{selector}{span})))"
        )
        value = float(p95[0]["value"][1]) if p95 else math.nan
        return VersionHealth(requests, errors, None if math.isnan(value) else value * 1000)
