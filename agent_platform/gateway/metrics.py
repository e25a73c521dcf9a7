"""Prometheus metrics of the gateway: HTTP request duration and count by route, status and the
agent version that answered (blue or green during a rollout), requests in flight, and every
loaded runtime's own metrics (labelled with agent and version), in one registry.

With several workers each process has its own registry and a scrape reaches one of them; run one
worker per container (replicas scale out) to scrape each process, as the production profile does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class RuntimesCollector(Collector):
    """The registries of the loaded runtimes, merged: one family per name, with `agent` and
    `agent_version` labels telling the versions apart."""

    def __init__(self, runtimes: Callable[[], Iterable[tuple[str, str, CollectorRegistry]]]):
        self._runtimes = runtimes

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for agent, version, registry in self._runtimes():
            for family in registry.collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = Metric(family.name, family.documentation, family.type, family.unit)
                    families[family.name] = merged
                for sample in family.samples:
                    labels = {**sample.labels, "agent": agent, "agent_version": version}
                    merged.samples.append(sample._replace(labels=labels))
        return list(families.values())


class GatewayMetrics:
    def __init__(self, runtimes: Callable[[], Iterable[tuple[str, str, CollectorRegistry]]]):
        self.registry = CollectorRegistry(auto_describe=True)
        self.duration = Histogram(
            "agent_platform_http_request_duration_seconds",
            "HTTP request duration, by method, route template, status code and the agent version "
            "that answered (`none` for requests no version answered).",
            ["method", "route", "status", "agent_version"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "agent_platform_http_requests",
            "HTTP requests answered, by method, route template, status code and agent version "
            "(what a rollout's error rate is computed from).",
            ["method", "route", "status", "agent_version"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "agent_platform_http_requests_in_flight",
            "HTTP requests being served by this worker.",
            registry=self.registry,
        )
        self.registry.register(RuntimesCollector(runtimes))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
