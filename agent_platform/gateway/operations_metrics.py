"""Operational state on the gateway's /metrics, read from where it is recorded, so the alert rules
see events that happen in other processes (a Dagster backup run, the daily quality gate, a
`models rollback`, a certificate renewal):

* `agent_platform_backup_newest_timestamp_seconds{tenant}`: when the newest index snapshot of a
  tenant was taken (its manifest's `created_at`);
* `agent_platform_quality_gate_passed{agent, agent_version}`: 1 when the champion passed its
  quality gates at the last check (the daily gate's `quality.passed` tag, else the evaluation's);
* `agent_platform_rollout_rollbacks_total{agent}`: rollbacks of `champion` in the registry's
  append-only audit log, plus blue/green rollouts rolled back before green held the alias (a
  counter: both records only grow);
* `agent_platform_tls_certificate_expiry_timestamp_seconds{file}`: `notAfter` of each certificate
  in `serving.monitored_certificates`.

Reading the registry and the snapshot manifests costs milliseconds, so values are refreshed at most
every `refresh_s`; a scrape in between answers from the last reading.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from agent_platform.settings import Settings

logger = logging.getLogger(__name__)
PREFIX = "agent_platform_"


def certificate_expiry(path: Path) -> float:
    """The `notAfter` of the first certificate of a PEM file, as a Unix timestamp."""
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return certificate.not_valid_after_utc.timestamp()


class OperationsCollector(Collector):
    """Backups, quality gates, rollbacks and certificates as metric families (see the module)."""

    def __init__(
        self, settings: Settings, agents: Callable[[], Iterable[str]], refresh_s: float = 15.0
    ):
        self.settings, self.agents, self.refresh_s = settings, agents, refresh_s
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._families: list[Metric] = self._empty()

    def _empty(self) -> list[Metric]:
        return [
            GaugeMetricFamily(
                f"{PREFIX}backup_newest_timestamp_seconds",
                "Unix time of the newest index snapshot, by tenant.",
                labels=["tenant"],
            ),
            GaugeMetricFamily(
                f"{PREFIX}quality_gate_passed",
                "1 when the champion passed its quality gates at the last check, else 0.",
                labels=["agent", "agent_version"],
            ),
            CounterMetricFamily(
                f"{PREFIX}rollout_rollbacks",
                "Rollbacks of the champion alias recorded in the registry's audit log.",
                labels=["agent"],
            ),
            GaugeMetricFamily(
                f"{PREFIX}tls_certificate_expiry_timestamp_seconds",
                "Unix time at which a monitored certificate expires.",
                labels=["file"],
            ),
        ]

    def describe(self) -> Iterable[Metric]:
        """The families' names, without reading anything (the registry asks on register)."""
        return self._empty()

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.refresh_s:
                self._families = self._read()
                self._read_at = time.monotonic()
            return list(self._families)

    def _read(self) -> list[Metric]:
        backups, gates, rollbacks, certificates = families = self._empty()
        for reader, family in (
            (self._backups, backups),
            (self._registry, (gates, rollbacks)),
            (self._certificates, certificates),
        ):
            try:
                reader(family)  # type: ignore[arg-type]
            except Exception as exc:  # a scrape must not fail because one source is down
                logger.warning("operations metrics: %s unreadable: %s", reader.__name__, exc)
        return families

    def _backups(self, family: GaugeMetricFamily) -> None:
        from agent_platform.tenants import TenantRegistry
        from agent_platform.vectorstore.snapshots import list_snapshots

        for tenant in sorted(TenantRegistry(self.settings.tenant_registry_path).tenants()):
            snapshots = list_snapshots(self.settings.snapshots_dir, tenant)
            if snapshots:
                newest = datetime.fromisoformat(snapshots[-1].created_at).timestamp()
                family.add_metric([tenant], newest)

    def _registry(self, families: tuple[GaugeMetricFamily, CounterMetricFamily]) -> None:
        gates, rollbacks = families
        uri = self.settings.resolved_mlflow_tracking_uri
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
            return  # nothing registered yet; reading would create the store
        from agent_platform.model_registry import AgentModelRegistry
        from agent_platform.model_registry.errors import UnknownAgentError

        registry = AgentModelRegistry.from_settings(self.settings)
        for agent in sorted(set(self.agents())):
            try:
                history = registry.history(agent)
                champion = registry.champion(agent)
            except UnknownAgentError:
                continue
            rolled_back = sum(1 for e in history if e.action == "rollback")
            rollbacks.add_metric([agent], float(rolled_back + self._early_rollbacks(agent)))
            if champion is not None and champion.evaluated:
                checked = champion.tags.get("quality.passed")
                passed = checked == "true" if checked else champion.gates_passed is True
                gates.add_metric([agent, str(champion.version)], 1.0 if passed else 0.0)

    def _early_rollbacks(self, agent: str) -> int:
        """Blue/green rollouts rolled back before green held the alias (the registry's history
        has no event for those; one that did move it is counted there)."""
        from agent_platform.delivery.state import Stage, open_rollout_store

        return sum(
            1
            for r in open_rollout_store(self.settings).history(agent, limit=100_000)
            if r.stage is Stage.ROLLED_BACK
            and not any(str(e.get("champion_alias", "")).startswith("restored") for e in r.events)
        )

    def _certificates(self, family: GaugeMetricFamily) -> None:
        for path in self.settings.serving.monitored_certificates:
            family.add_metric([str(path)], certificate_expiry(Path(path)))
