"""The operations metrics the alerts read (gateway/operations_metrics.py), each driven by the real
event: a snapshot taken by the embedded store, promotions and a rollback in the MLflow registry,
the daily quality check's verdict, a certificate file."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from agent_platform.gateway.operations_metrics import OperationsCollector
from agent_platform.settings import Settings
from tests.operations.conftest import self_signed


def scrape(settings: Settings, agents: list[str] = ()) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(OperationsCollector(settings, lambda: agents, refresh_s=0))
    return registry


def test_backup_timestamp_follows_the_newest_snapshot(settings: Settings) -> None:
    from agent_platform.tenants import TenantRegistry
    from agent_platform.vectorstore.base import ChunkRecord
    from agent_platform.vectorstore.embedded import EmbeddedVectorStore

    source = settings.home_dir / "docs"
    source.mkdir(parents=True)
    TenantRegistry(settings.tenant_registry_path).register("acme", source)
    name = "agent_platform_backup_newest_timestamp_seconds"
    assert scrape(settings).get_sample_value(name, {"tenant": "acme"}) is None  # never backed up

    vectors = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    store = EmbeddedVectorStore(settings.index_dir, snapshots_dir=settings.snapshots_dir)
    try:
        store.upsert(
            "acme", [ChunkRecord(f"c{i}", "d", "s", "text", v, {}) for i, v in enumerate(vectors)]
        )
        first = store.backup("acme", settings.snapshots_dir)
        second = store.backup("acme", settings.snapshots_dir)
    finally:
        store.close()
    value = scrape(settings).get_sample_value(name, {"tenant": "acme"})
    assert value == dt.datetime.fromisoformat(second.created_at).timestamp()
    assert value >= dt.datetime.fromisoformat(first.created_at).timestamp()


def test_rollbacks_and_quality_gate_follow_the_registry(mlflow_settings: Settings) -> None:
    from agent_platform.model_registry import AgentModelRegistry
    from agent_platform.runtime.agent_config import AgentConfig

    registry = AgentModelRegistry.from_settings(mlflow_settings)
    config = AgentConfig(name="qa-agent", models=["extractive"])
    registry.register(config, {"version_key": "k1"})
    registry.register(config.model_copy(update={"models": ["gemma-3-270m"]}), {"version_key": "k2"})
    for version in (1, 2):
        registry.record_evaluation(
            "qa-agent",
            version,
            run_id=f"r{version}",
            metrics={"accuracy": 1.0},
            gates_passed=True,
            dataset_version="d",
        )
    registry.promote("qa-agent", 1, by="alice")
    registry.promote("qa-agent", 2, by="bob")
    rollbacks, gate = "agent_platform_rollout_rollbacks_total", "agent_platform_quality_gate_passed"
    metrics = scrape(mlflow_settings, ["qa-agent", "never-registered"])
    assert metrics.get_sample_value(rollbacks, {"agent": "qa-agent"}) == 0
    assert metrics.get_sample_value(rollbacks, {"agent": "never-registered"}) is None
    assert metrics.get_sample_value(gate, {"agent": "qa-agent", "agent_version": "2"}) == 1

    registry.rollback("qa-agent", by="oncall", reason="error rate above 1%")
    registry.record_quality_check("qa-agent", 1, passed=False, run_id="daily")
    metrics = scrape(mlflow_settings, ["qa-agent"])
    assert metrics.get_sample_value(rollbacks, {"agent": "qa-agent"}) == 1
    assert metrics.get_sample_value(gate, {"agent": "qa-agent", "agent_version": "1"}) == 0
    assert metrics.get_sample_value(gate, {"agent": "qa-agent", "agent_version": "2"}) is None


def test_certificate_expiry_and_an_unreadable_source(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    not_after = self_signed(tmp_path / "gateway.pem", days=5)
    name = "agent_platform_tls_certificate_expiry_timestamp_seconds"
    watched = settings.model_copy(
        update={
            "serving": settings.serving.model_copy(
                update={"monitored_certificates": [tmp_path / "gateway.pem"]}
            )
        }
    )
    value = scrape(watched).get_sample_value(name, {"file": str(tmp_path / "gateway.pem")})
    assert value == not_after

    missing = settings.model_copy(
        update={
            "serving": settings.serving.model_copy(
                update={"monitored_certificates": [tmp_path / "gone.pem"]}
            )
        }
    )
    with caplog.at_level(logging.WARNING):
        registry = scrape(missing)  # the scrape still answers
        assert registry.get_sample_value(name, {"file": str(tmp_path / "gone.pem")}) is None
    assert "_certificates unreadable" in caplog.text and "gone.pem" in caplog.text
