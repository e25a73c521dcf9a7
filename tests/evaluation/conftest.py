"""Evaluation fixtures: a migrated MLflow database copied per test, hand-built responses, and a
sample tenant indexed once per session (real embedder, real Dagster run)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agent_platform.cli.execution import run_tenant_job
from agent_platform.prompts import MlflowPromptStore, PromptRepository, publish_prompt
from agent_platform.prompts.repository import BUILTIN_PROMPTS_DIR
from agent_platform.runtime.response import (
    AgentResponse,
    Citation,
    PromptUsed,
    RetrievedChunk,
    Usage,
)
from agent_platform.settings import Settings
from agent_platform.tenants import TenantRegistry

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATASET = PROJECT_ROOT / "evaluation" / "datasets" / "sample.jsonl"


@pytest.fixture
def eval_settings(mlflow_settings):
    """`settings` with a ready MLflow store (see tests/conftest.py)."""
    return mlflow_settings


def make_response(
    answer: str,
    chunks: list[tuple[str, str]] = (),
    *,
    refused: bool = False,
    cite: list[int] | None = None,
    latency: float = 10.0,
) -> AgentResponse:
    """A response as the runtime returns it: `chunks` are (source, text), all used."""
    retrieved = [
        RetrievedChunk(source=s, chunk_id=f"c{i}", score=0.9 - i / 10, text=t, used=True)
        for i, (s, t) in enumerate(chunks)
    ]
    cited = cite if cite is not None else ([1] if chunks and not refused else [])
    return AgentResponse(
        answer=answer,
        citations=[
            Citation(number=n, source=retrieved[n - 1].source, chunk_id=f"c{n - 1}", score=0.9)
            for n in cited
            if 0 < n <= len(retrieved)
        ],
        model="extractive",
        prompt=PromptUsed(name="grounded_qa_system", version=1),
        usage=Usage(input_tokens=100, output_tokens=20),
        cost=0.0,
        latency_ms={"total": latency},
        trace_id="t",
        session_id="s",
        state_version=1,
        refused=refused,
        retrieved=retrieved,
        agent="grounded-qa",
    )


@pytest.fixture(scope="session")
def sample_home(tmp_path_factory: pytest.TempPathFactory, migrated_mlflow_db: Path) -> Path:
    """A home with the sample tenant indexed and the shipped prompts registered (built once)."""
    home = tmp_path_factory.mktemp("sample-home")
    (home / "mlflow").mkdir()
    shutil.copyfile(migrated_mlflow_db, home / "mlflow" / "mlflow.db")
    saved = {k: os.environ.get(k) for k in ("AGENT_PLATFORM_HOME", "DAGSTER_HOME")}
    os.environ["AGENT_PLATFORM_HOME"], os.environ["DAGSTER_HOME"] = str(home), str(home / "dagster")
    try:
        settings = Settings(home=home)
        TenantRegistry(settings.tenant_registry_path).register("sample", PROJECT_ROOT / "docs")
        outcome = run_tenant_job(settings, "knowledge_job", "sample")
        assert outcome.success, outcome.failures
        backup = run_tenant_job(settings, "index_backup_job", "sample")
        assert backup.success, backup.failures
        repo = PromptRepository.from_dirs([BUILTIN_PROMPTS_DIR])
        store = MlflowPromptStore(settings.resolved_mlflow_tracking_uri)
        for name in repo.names():
            publish_prompt(repo, store, name)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return home


@pytest.fixture
def home(sample_home: Path, platform_home: Path) -> Path:
    shutil.rmtree(platform_home)
    shutil.copytree(sample_home, platform_home)
    return platform_home
