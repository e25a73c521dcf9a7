"""Prepare DAGSTER_HOME for the active profile without importing Dagster.

The embedded default uses Dagster's SQLite storage under AGENT_PLATFORM_HOME; production points
the instance at PostgreSQL through dagster-postgres. Both queue runs with a per-tenant limit:
tenant jobs are partitioned by tenant, so the run queue's limit per unique `dagster/partition`
value keeps one tenant's big ingest from holding every slot.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent_platform.settings import Settings

TENANT_RUN_TAG = "dagster/partition"


def run_queue_yaml(*, runs_per_tenant: int = 1, max_concurrent_runs: int | None = None) -> str:
    """The `run_queue` block: at most `runs_per_tenant` runs of one tenant at once."""
    total = "" if max_concurrent_runs is None else f"  max_concurrent_runs: {max_concurrent_runs}\n"
    return (
        "run_queue:\n"
        f"{total}"
        "  tag_concurrency_limits:\n"
        f'    - key: "{TENANT_RUN_TAG}"\n'
        "      value:\n"
        "        applyLimitPerUniqueValue: true\n"
        f"      limit: {runs_per_tenant}\n"
    )


def local_instance_yaml(runs_per_tenant: int = 1) -> str:
    return (
        "# Written by agent-platform for the 'local' profile: SQLite storage in this directory.\n"
        f"{run_queue_yaml(runs_per_tenant=runs_per_tenant)}"
        "telemetry:\n"
        "  enabled: false\n"
    )


def production_instance_yaml(runs_per_tenant: int = 1) -> str:
    return (
        "# Written by agent-platform for the 'production' profile: run, event-log and schedule\n"
        "# storage on PostgreSQL. The URL is read from the environment at load time, not stored.\n"
        "storage:\n"
        "  postgres:\n"
        "    postgres_url:\n"
        "      env: AGENT_PLATFORM_POSTGRES_URL\n"
        f"{run_queue_yaml(runs_per_tenant=runs_per_tenant, max_concurrent_runs=10)}"
        "telemetry:\n"
        "  enabled: false\n"
    )


LOCAL_INSTANCE_YAML = local_instance_yaml()
PRODUCTION_INSTANCE_YAML = production_instance_yaml()


def instance_yaml(settings: Settings) -> str:
    if settings.profile == "production":
        return production_instance_yaml(settings.runs_per_tenant)
    return local_instance_yaml(settings.runs_per_tenant)


def ensure_dagster_home(settings: Settings, *, export: bool = True) -> Path:
    """Create DAGSTER_HOME with the profile's dagster.yaml (kept if a person wrote one)."""
    home = settings.resolved_dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(instance_yaml(settings), encoding="utf-8")
    if export:
        os.environ["DAGSTER_HOME"] = str(home)
    return home
