"""behave hooks: every scenario gets a fresh embedded home (AGENT_PLATFORM_HOME and DAGSTER_HOME in
a temporary directory), and whatever a scenario started (a server process) is stopped after it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from behave.model import Scenario
from behave.runner import Context

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
SCENARIO_KEYS = (
    "AGENT_PLATFORM_HOME",
    "DAGSTER_HOME",
    "AGENT_PLATFORM_CONFIG_FILE",
    "AGENT_PLATFORM_PROFILE",
)


def before_all(context: Context) -> None:
    """Offline models, and one migrated MLflow store copied into each home (migrating takes
    seconds; copying an empty, migrated database is instant)."""
    for key, value in OFFLINE.items():
        os.environ.setdefault(key, value)
    from agent_platform.model_registry.store import ensure_store
    from agent_platform.runtime.models.gemma import default_cache_dir

    # the embedding model's exported graphs, shared by every scenario's fresh home
    os.environ.setdefault(
        "AGENT_PLATFORM_EMBEDDING_EXPORT_DIR", str(default_cache_dir() / "embedding-exports")
    )

    context.session_dir = Path(tempfile.mkdtemp(prefix="behave-session-"))
    context.mlflow_template = context.session_dir / "mlflow" / "mlflow.db"
    context.mlflow_template.parent.mkdir(parents=True)
    ensure_store(f"sqlite:///{context.mlflow_template}")


def after_all(context: Context) -> None:
    shutil.rmtree(context.session_dir, ignore_errors=True)


def before_scenario(context: Context, scenario: Scenario) -> None:
    context.workdir = Path(tempfile.mkdtemp(prefix="behave-"))
    context.home = context.workdir / "home"
    (context.home / "dagster").mkdir(parents=True)
    (context.home / "mlflow").mkdir()
    shutil.copyfile(context.mlflow_template, context.home / "mlflow" / "mlflow.db")
    context.saved_env = {key: os.environ.get(key) for key in SCENARIO_KEYS}
    os.environ["AGENT_PLATFORM_HOME"] = str(context.home)
    os.environ["DAGSTER_HOME"] = str(context.home / "dagster")
    os.environ.pop("AGENT_PLATFORM_CONFIG_FILE", None)
    os.environ.pop("AGENT_PLATFORM_PROFILE", None)
    context.cleanups = []


def after_scenario(context: Context, scenario: Scenario) -> None:
    for cleanup in reversed(context.cleanups):
        cleanup()
    for key, value in context.saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(context.workdir, ignore_errors=True)
