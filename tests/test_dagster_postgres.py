"""Dagster's instance storage on the machine's PostgreSQL through dagster-postgres (for real)."""

from pathlib import Path

import dagster as dg
import psycopg
import pytest

from agent_platform.dagster_home import PRODUCTION_INSTANCE_YAML
from agent_platform.definitions import build_resources
from agent_platform.settings import Settings
from agent_platform.tenants import TenantRegistry
from assets.knowledge import source_documents
from tests.databases import scratch_database as new_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def scratch_database(postgres_url: str):
    """A database of its own, so Dagster's tables never collide with another test's."""
    with new_database(postgres_url, "ap_dagster") as url:
        yield url


def test_materialization_is_stored_in_postgres(
    scratch_database: str, platform_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_PLATFORM_POSTGRES_URL", scratch_database)
    dagster_home = tmp_path / "pg_dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(PRODUCTION_INSTANCE_YAML)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("PostgreSQL keeps the run history.")

    settings = Settings(home=platform_home)
    TenantRegistry(settings.tenant_registry_path).register("pg-tenant", docs)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 10
        instance.add_dynamic_partitions("tenants", ["pg-tenant"])
        result = dg.materialize(
            [source_documents],
            partition_key="pg-tenant",
            instance=instance,
            resources=build_resources(settings),
        )
        assert result.success
        run_id = result.run_id

    with psycopg.connect(scratch_database) as conn:
        status = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        materialized = conn.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s "
            "AND dagster_event_type = 'ASSET_MATERIALIZATION' AND partition = %s",
            (run_id, "pg-tenant"),
        ).fetchone()
        partitions = conn.execute(
            "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'tenants'"
        ).fetchall()
    assert status == ("SUCCESS",)
    assert materialized == (1,)
    assert ("pg-tenant",) in partitions
