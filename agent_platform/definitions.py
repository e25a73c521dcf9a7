"""The composition root: the one `dg.Definitions` that `workspace.yaml` and the CLI load.

This is the only module of `agent_platform` that imports Dagster; nothing in the library imports
it. Backends are chosen here, once, from `Settings` (local vs production).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import dagster as dg

from agent_platform.prompts import default_prompt_dirs
from agent_platform.settings import Settings, get_settings
from assets.delivery import agent_rollout, deploy_agent_version
from assets.evaluation import (
    champion_promotion,
    champion_quality,
    evaluated_model_versions,
    evaluation_dataset,
    evaluation_dataset_valid,
    evaluation_job,
    gate_checks,
    quality_gate_job,
    with_agent_lineage,
)
from assets.jobs import index_backup_job, knowledge_job, prompts_job, reindex_job
from assets.keys import encryption_keys, key_rotation_job
from assets.knowledge import (
    document_chunks,
    embeddings,
    for_backend,
    index_snapshot,
    source_documents,
    vector_index,
)
from assets.knowledge_checks import knowledge_checks
from assets.prompts import build_prompt_assets, prompt_names
from assets.readiness import readiness_automation, readiness_job, readiness_report
from resources.embedder import EmbedderResource
from resources.keys import KeyRingResource
from resources.knowledge import KnowledgeWorkspaceResource
from resources.model_registry import (
    EvaluationResource,
    LocalModelRegistryResource,
    MlflowServerModelRegistryResource,
    ModelRegistryResource,
)
from resources.prompts import PromptsResource
from resources.vector_store import (
    EmbeddedVectorStoreResource,
    VectorStoreResource,
    WeaviateVectorStoreResource,
)
from sensors.delivery import build_rollout_sensor
from sensors.evaluation import daily_quality_gate, evaluation_request_sensor
from sensors.knowledge import knowledge_sources_sensor
from sensors.prompts import build_prompt_sensor
from sensors.schedules import daily_index_backup, key_rotation, weekly_reindex


def build_vector_store_resource(settings: Settings) -> VectorStoreResource:
    common: dict[str, Any] = {
        "snapshots_dir": str(settings.snapshots_dir),
        "snapshot_retention_days": settings.snapshot_retention_days,
    }
    if settings.resolved_vector_backend == "weaviate":
        return WeaviateVectorStoreResource(
            url=settings.weaviate_url or "",
            grpc_port=settings.weaviate_grpc_port,
            api_key=dg.EnvVar("AGENT_PLATFORM_WEAVIATE_API_KEY")
            if settings.weaviate_api_key
            else None,
            **common,
        )
    return EmbeddedVectorStoreResource(index_dir=str(settings.index_dir), **common)


def build_model_registry_resource(settings: Settings) -> ModelRegistryResource:
    if settings.profile == "production":
        return MlflowServerModelRegistryResource(
            home=str(settings.home_dir),
            server_uri=settings.resolved_mlflow_tracking_uri,
            artifacts_uri=settings.resolved_mlflow_artifact_root,
        )
    return LocalModelRegistryResource(home=str(settings.home_dir))


def build_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """Celery workers when `executor = "celery"`; else Dagster's default (None). A run started
    with `execute_in_process` always runs in process, whatever this says."""
    if settings.executor != "celery":
        return None
    from dagster_celery import celery_executor

    celery = settings.celery
    return celery_executor.configured(
        {
            "broker": celery.broker_url,
            "backend": celery.backend,
            "config_source": {"task_default_queue": celery.queue},
        },
        name="celery",
    )


def build_resources(
    settings: Settings, prompt_dirs: Sequence[Path] | None = None
) -> dict[str, object]:
    """Every resource, configured for the active profile."""
    embedding = settings.embedding
    return {
        "embedder": EmbedderResource(
            primary_model=embedding.primary_model,
            fallback_model=embedding.fallback_model,
            model_dirs={name: str(path) for name, path in embedding.model_dirs.items()},
            batch_size=embedding.batch_size,
            backend=embedding.backend,
            threads=embedding.threads,
            cache_path=str(settings.embedding_cache_path),
            export_dir=str(settings.embedding_export_dir),
        ),
        "knowledge": KnowledgeWorkspaceResource(
            knowledge_dir=str(settings.knowledge_dir),
            registry_path=str(settings.tenant_registry_path),
            sources_dir=str(settings.resolved_sources_dir),
            max_document_bytes=embedding.max_document_bytes,
            chunk_tokens=embedding.chunk_tokens,
            chunk_overlap_tokens=embedding.chunk_overlap_tokens,
        ),
        "vector_store": build_vector_store_resource(settings),
        "prompts": PromptsResource.from_settings(settings, prompt_dirs=prompt_dirs),
        "evaluation": EvaluationResource(),
        "model_registry": build_model_registry_resource(settings),
        "key_ring": KeyRingResource(home=str(settings.home_dir)),
    }


def build_definitions(
    settings: Settings, prompt_dirs: Sequence[Path] | None = None
) -> dg.Definitions:
    """All assets, checks, jobs, schedules, sensors and resources of the code location.

    `prompt_dirs` defaults to the project's `prompts/` plus `AGENT_PLATFORM_PROMPTS_DIR`; one
    asset pair is built per prompt found there. The index assets are badged with the configured
    backend, and the evaluation depends on the prompts and the snapshot its plan uses.
    """
    prompt_dirs = list(prompt_dirs) if prompt_dirs is not None else default_prompt_dirs()
    prompt_assets, prompt_asset_checks = build_prompt_assets(prompt_dirs)
    prompts = prompt_names(prompt_assets)
    prompt_files_sensor = build_prompt_sensor(prompts)
    resources = build_resources(settings, prompt_dirs)
    backend = settings.resolved_vector_backend
    plan = cast(EvaluationResource, resources["evaluation"]).plan()
    return dg.Definitions(
        assets=[
            source_documents,
            document_chunks,
            embeddings,
            for_backend(vector_index, backend),
            for_backend(index_snapshot, backend),
            *prompt_assets,
            evaluation_dataset,
            with_agent_lineage(evaluated_model_versions, plan, prompts),
            champion_promotion,
            champion_quality,
            readiness_report,
            encryption_keys,
            agent_rollout,
        ],
        asset_checks=[
            *knowledge_checks,
            *prompt_asset_checks,
            evaluation_dataset_valid,
            *gate_checks,
        ],
        jobs=[
            knowledge_job,
            index_backup_job,
            reindex_job,
            prompts_job,
            evaluation_job,
            quality_gate_job,
            readiness_job,
            key_rotation_job,
            deploy_agent_version,
        ],
        schedules=[daily_index_backup, weekly_reindex, daily_quality_gate, key_rotation],
        sensors=[
            knowledge_sources_sensor,
            prompt_files_sensor,
            evaluation_request_sensor,
            readiness_automation,
            build_rollout_sensor(settings.delivery.tick_interval_s),
        ],
        resources=resources,
        executor=build_executor(settings),
    )


def job_for_workers(job_name: str, prompt_dirs: tuple[str, ...] | None = None) -> dg.JobDefinition:
    """The job as every process of a distributed run rebuilds it: the target of the
    reconstructable pointer a Celery worker loads (settings come from its environment)."""
    dirs = [Path(d) for d in prompt_dirs] if prompt_dirs is not None else None
    return build_definitions(get_settings(), dirs).resolve_job_def(job_name)


defs = build_definitions(get_settings())
