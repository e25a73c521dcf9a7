"""Prepare DAGSTER_HOME for the active profile without importing Dagster.

The embedded default uses Dagster's SQLite storage under AGENT_PLATFORM_HOME; production points
the instance at PostgreSQL through dagster-postgres. Only the `dagster.yaml` differs.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent_platform.settings import Settings

LOCAL_INSTANCE_YAML = """\
# Written by agent-platform for the 'local' profile: SQLite storage in this directory.
telemetry:
  enabled: false
"""

PRODUCTION_INSTANCE_YAML = """\
# Written by agent-platform for the 'production' profile: run, event-log and schedule storage
# on PostgreSQL. The URL is read from the environment at load time, never stored here.
storage:
  postgres:
    postgres_url:
      env: AGENT_PLATFORM_POSTGRES_URL
run_queue:
  max_concurrent_runs: 10
telemetry:
  enabled: false
"""


def instance_yaml(settings: Settings) -> str:
    return PRODUCTION_INSTANCE_YAML if settings.profile == "production" else LOCAL_INSTANCE_YAML


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
