"""Run the Dagster jobs of the one `Definitions` in process, exactly as the UI would.

The CLI never re-implements a pipeline: it adds the tenant partition, executes the job against
the instance under DAGSTER_HOME (so runs appear in the UI) and reads the materialization metadata.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_platform.dagster_home import ensure_dagster_home
from agent_platform.settings import Settings

TENANTS_PARTITIONS = "tenants"
TENANT_PARTITION_TAG = "dagster/partition"


@dataclass
class JobOutcome:
    success: bool
    run_id: str
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)  # by asset name
    failures: list[str] = field(default_factory=list)


def run_tenant_job(
    settings: Settings, job_name: str, tenant: str, run_config: dict[str, Any] | None = None
) -> JobOutcome:
    """Run a tenant-partitioned job, adding the tenant partition first if it is new."""
    return run_job(settings, job_name, partition_key=tenant, run_config=run_config)


def run_job(
    settings: Settings,
    job_name: str,
    *,
    partition_key: str | None = None,
    run_config: dict[str, Any] | None = None,
    prompt_dirs: list[Path] | None = None,
) -> JobOutcome:
    import dagster as dg

    from agent_platform.definitions import build_definitions

    ensure_dagster_home(settings)
    # Entering the instance makes it the current one for Dagster's definitions-state storage for
    # the run; without it, a storage left current by an instance already disposed elsewhere in the
    # process fails definitions loading ('undefined DagsterInstance weakref').
    with dg.DagsterInstance.get() as instance:
        if partition_key is not None and not instance.has_dynamic_partition(
            TENANTS_PARTITIONS, partition_key
        ):
            instance.add_dynamic_partitions(TENANTS_PARTITIONS, [partition_key])
        # The terminal shows a summary, progress bars and the failures (collected below); the full
        # event log, stack traces included, is in the Dagster UI.
        log_level = os.environ.get("AGENT_PLATFORM_CLI_LOG_LEVEL", "CRITICAL")
        config = {
            **(run_config or {}),
            "loggers": {"console": {"config": {"log_level": log_level}}},
        }
        if settings.executor == "in_process":
            job = build_definitions(settings, prompt_dirs).resolve_job_def(job_name)
            result = job.execute_in_process(
                partition_key=partition_key,
                instance=instance,
                run_config=config,
                raise_on_error=False,
            )
        else:
            result = _execute_distributed(instance, job_name, partition_key, config, prompt_dirs)
    outcome = JobOutcome(success=result.success, run_id=result.run_id)
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        outcome.metadata[materialization.asset_key.to_user_string()] = {
            key: value.value for key, value in materialization.metadata.items()
        }
    failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
    for evaluation in failed_checks:
        outcome.failures.append(
            f"check {evaluation.check_name} on {evaluation.asset_key.to_user_string()} "
            f"failed: {_check_summary(evaluation.metadata)}"
        )
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error:
            if (event.step_key or "").endswith(tuple(e.check_name for e in failed_checks)):
                continue  # already reported above with the check's numbers
            outcome.failures.append(
                f"step {event.step_key} failed: {_root_cause(event.step_failure_data.error)}"
            )
    return outcome


def _execute_distributed(
    instance: Any,
    job_name: str,
    partition_key: str | None,
    run_config: dict[str, Any],
    prompt_dirs: list[Path] | None,
) -> Any:
    """Run the job with the executor the definitions name (Celery workers): the job must be
    reconstructable, since each worker rebuilds it from the composition root."""
    import dagster as dg

    dirs = tuple(str(d) for d in prompt_dirs) if prompt_dirs is not None else None
    job = dg.build_reconstructable_job(
        "agent_platform.definitions",
        "job_for_workers",
        reconstructable_kwargs={"job_name": job_name, "prompt_dirs": dirs},
    )
    tags = {TENANT_PARTITION_TAG: partition_key} if partition_key is not None else None
    with warnings.catch_warnings():
        # dagster-celery registers its task again for every step it queues; Celery 5.7 warns
        # each time, though the task is one and the same.
        warnings.filterwarnings("ignore", message="Task name 'execute_plan' is already registered")
        return dg.execute_job(job, instance, run_config=run_config, tags=tags, raise_on_error=False)


def _check_summary(metadata: Mapping[str, Any]) -> str:
    """The check's own summary, else its scalar metadata (value, threshold and the like)."""
    if "summary" in metadata:
        return str(metadata["summary"].value)
    scalars = {k: v.value for k, v in metadata.items() if isinstance(v.value, int | float | str)}
    return ", ".join(f"{k}={v}" for k, v in list(scalars.items())[:6])


def _root_cause(error: Any) -> str:
    """The user code's error message: Dagster wraps it in its own errors. The outermost
    non-Dagster error is the one our code raised (its message names the repair; its own cause,
    say a sqlite3 error, is detail)."""
    while getattr(error, "cause", None) is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    message: str = error.message.strip()  # a SerializableErrorInfo's
    qualified, sep, rest = message.partition(": ")
    if sep and qualified.endswith(error.cls_name):
        # our own errors read as sentences; others keep their short class name for context
        short = "" if qualified.startswith("agent_platform.") else f"{error.cls_name}: "
        message = short + rest
    return message
