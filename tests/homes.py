"""Building the session-scoped homes several suites share: a tenant indexed by the real Dagster
knowledge job, and the shipped prompts published with `grounded_qa_system` v1 in production."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent_platform.runtime.models.gemma import default_cache_dir
from agent_platform.settings import Settings

# Gemma's converted weights, shared by every test home instead of each home's `models/`: they are a
# pure function of the installed package, converting them costs a minute of CPU, and a file lock
# makes concurrent first uses wait for one conversion.
MODEL_CACHE = default_cache_dir()

# Two approvers, one per required role: one name may never fill both (issue 8.2).
APPROVERS = {"prompt-owner-lead": ["prompt-owner"], "safety-lead": ["safety"]}


@contextmanager
def home_environment(home: Path) -> Iterator[None]:
    """AGENT_PLATFORM_HOME and DAGSTER_HOME point at `home` inside the block (Dagster's jobs
    read them); the process environment is restored afterwards."""
    saved = {k: os.environ.get(k) for k in ("DAGSTER_HOME", "AGENT_PLATFORM_HOME")}
    os.environ["DAGSTER_HOME"], os.environ["AGENT_PLATFORM_HOME"] = str(home / "dagster"), str(home)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def index_tenant(settings: Settings, tenant: str, corpus: Path) -> None:
    """Register `tenant` on `corpus` and materialize its knowledge job under the home's
    DAGSTER_HOME."""
    from agent_platform.cli.execution import run_tenant_job
    from agent_platform.tenants import TenantRegistry

    with home_environment(settings.home_dir):
        TenantRegistry(settings.tenant_registry_path).register(tenant, corpus)
        outcome = run_tenant_job(settings, "knowledge_job", tenant)
        assert outcome.success, outcome.failures


def promote_shipped_prompts(settings: Settings) -> None:
    """Publish every shipped prompt; approve and promote `grounded_qa_system` v1 only, so
    `grounded_qa_user` v1 stays a candidate (the runtime's fallback path)."""
    from agent_platform.prompts import (
        ApproverRoles,
        MlflowPromptStore,
        PromotionService,
        PromptRepository,
        ReviewLog,
        publish_prompt,
    )
    from agent_platform.prompts.repository import BUILTIN_PROMPTS_DIR

    store = MlflowPromptStore(settings.resolved_mlflow_tracking_uri)
    repo = PromptRepository.from_dirs([BUILTIN_PROMPTS_DIR])
    for name in repo.names():
        publish_prompt(repo, store, name)
    service = PromotionService(
        store, ReviewLog.under(settings.home_dir), ApproverRoles(approvers=APPROVERS)
    )
    for role in ("prompt-owner", "safety"):
        service.approve("grounded_qa_system", 1, role=role, by=f"{role}-lead")
    service.promote("grounded_qa_system", 1, by="release")
