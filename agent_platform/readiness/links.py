"""Links from the readiness report to the UIs a person opens next: the MLflow model version and
runs, and the Dagster run that wrote the report. The UI addresses are configuration."""

from __future__ import annotations

from urllib.parse import quote

from pydantic_settings import BaseSettings, SettingsConfigDict


class UiSettings(BaseSettings):
    """Where the UIs are served (`AGENT_PLATFORM_UI_MLFLOW_URL`, `AGENT_PLATFORM_UI_DAGSTER_URL`);
    the defaults are `mlflow ui` and `make ui` on this machine."""

    model_config = SettingsConfigDict(env_prefix="AGENT_PLATFORM_UI_", extra="ignore")

    mlflow_url: str = "http://127.0.0.1:5000"
    dagster_url: str = "http://127.0.0.1:3000"


def mlflow_model_version(ui: UiSettings, model: str, version: int) -> str:
    return f"{ui.mlflow_url.rstrip('/')}/#/models/{quote(model, safe='')}/versions/{version}"


def mlflow_run(ui: UiSettings, experiment_id: str, run_id: str) -> str:
    return f"{ui.mlflow_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def dagster_run(ui: UiSettings, run_id: str) -> str:
    return f"{ui.dagster_url.rstrip('/')}/runs/{run_id}"
