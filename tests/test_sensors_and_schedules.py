"""The sources sensor (new tenants, content changes) and the backup/reindex schedules."""

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from agent_platform.settings import Settings
from resources.knowledge import KnowledgeWorkspaceResource
from sensors.knowledge import knowledge_sources_sensor
from sensors.schedules import daily_index_backup, weekly_reindex


@pytest.fixture
def workspace(settings: Settings, tmp_path: Path) -> KnowledgeWorkspaceResource:
    sources = tmp_path / "sources"
    (sources / "acme").mkdir(parents=True)
    (sources / "acme" / "faq.md").write_text("Acme answers questions.")
    (sources / "Bad Name").mkdir()
    return KnowledgeWorkspaceResource(
        knowledge_dir=str(settings.knowledge_dir),
        registry_path=str(settings.tenant_registry_path),
        sources_dir=str(sources),
    )


def _evaluate(instance: dg.DagsterInstance, workspace, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"knowledge": workspace}
    ) as context:
        return knowledge_sources_sensor(context)


def test_sensor_registers_new_tenants_and_runs_on_content_changes(workspace) -> None:
    sources = Path(workspace.sources_dir)
    with dg.DagsterInstance.ephemeral() as instance:
        first = _evaluate(instance, workspace, None)
        assert [r.partition_key for r in first.run_requests] == ["acme"]
        assert first.dynamic_partitions_requests[0].partition_keys == ["acme"]
        instance.add_dynamic_partitions("tenants", ["acme"])

        unchanged = _evaluate(instance, workspace, first.cursor)
        assert unchanged.run_requests == []
        assert unchanged.dynamic_partitions_requests == []

        (sources / "acme" / "faq.md").touch()  # mtime only: no run
        assert _evaluate(instance, workspace, first.cursor).run_requests == []

        (sources / "acme" / "faq.md").write_text("Acme answers more questions.")
        changed = _evaluate(instance, workspace, first.cursor)
        assert [r.partition_key for r in changed.run_requests] == ["acme"]
        assert changed.run_requests[0].run_key != first.run_requests[0].run_key
        assert json.loads(changed.cursor)["acme"] != json.loads(first.cursor)["acme"]

        (sources / "globex").mkdir()
        (sources / "globex" / "a.txt").write_text("Globex docs.")
        added = _evaluate(instance, workspace, changed.cursor)
        assert [r.partition_key for r in added.run_requests] == ["globex"]
        assert added.dynamic_partitions_requests[0].partition_keys == ["globex"]


def test_sensor_without_cursor_starts_from_the_ingested_documents(
    settings: Settings, workspace: KnowledgeWorkspaceResource
) -> None:
    """Switched on over an ingested home (the first `make ui` after `make demo`), the sensor
    requests nothing for an unchanged tenant; an edit made since is still requested."""
    from agent_platform.cli.execution import run_tenant_job
    from agent_platform.tenants import TenantRegistry

    sources = Path(workspace.sources_dir)
    TenantRegistry(settings.tenant_registry_path).register("acme", sources / "acme")
    assert run_tenant_job(settings, "knowledge_job", "acme").success
    with dg.DagsterInstance.get() as instance:  # the instance under DAGSTER_HOME the job used
        first = _evaluate(instance, workspace, None)
        assert first.run_requests == [] and first.dynamic_partitions_requests == []
        assert set(json.loads(first.cursor)) == {"acme"}

        (sources / "acme" / "faq.md").write_text("Acme answers more questions.")
        for cursor in (first.cursor, None):
            requests = _evaluate(instance, workspace, cursor).run_requests
            assert [r.partition_key for r in requests] == ["acme"]


def test_schedules_request_one_run_per_tenant() -> None:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", ["acme", "globex"])
        when = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as context:
            backups = daily_index_backup(context)
            reindexes = weekly_reindex(context)
    assert sorted(r.partition_key for r in backups) == ["acme", "globex"]
    assert all(r.run_key.startswith("backup-") for r in backups)
    assert sorted(r.partition_key for r in reindexes) == ["acme", "globex"]
    assert daily_index_backup.cron_schedule == "0 2 * * *"
    assert weekly_reindex.cron_schedule == "0 3 * * 0"
