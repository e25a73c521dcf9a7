"""The per-tenant run queue under load: runs of one tenant beyond its limit wait in Dagster's
queue while another tenant's run goes ahead.

The instance is the one the platform writes (`ensure_dagster_home`: QueuedRunCoordinator with a
limit per `dagster/partition` value); runs of the real knowledge job are submitted to its run
coordinator and Dagster's own queue daemon (`QueuedRunCoordinatorDaemon`) decides, iteration by
iteration, which to dequeue. Dagster's recording launcher (`MockedRunLauncher`, from its own test
utilities) takes the dequeued runs and leaves them in progress, which is all a run holds a slot
for; executing them would only add minutes of ingest to what the queue decides.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from agent_platform.cli.execution import TENANT_PARTITION_TAG
from agent_platform.dagster_home import ensure_dagster_home
from agent_platform.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PER_TENANT = 2
# the code location as workspace.yaml names it, loaded in this process instead of a code server
LOCATION = InProcessCodeLocationOrigin(
    LoadableTargetOrigin(
        module_name="agent_platform.definitions", attribute="defs", working_directory=str(REPO)
    ),
    location_name="agent_platform",
)
RECORDING_LAUNCHER = (
    "run_launcher:\n  module: dagster._core.test_utils\n  class: MockedRunLauncher\n"
)


def _in_progress(instance: dg.DagsterInstance) -> Counter[str]:
    """Runs holding a slot (starting or started), by tenant."""
    statuses = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    runs = instance.get_runs(dg.RunsFilter(statuses=statuses))
    return Counter(run.tags[TENANT_PARTITION_TAG] for run in runs)


def _queued(instance: dg.DagsterInstance) -> list[str]:
    runs = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
    return sorted(run.run_id for run in runs)


def _finish(instance: dg.DagsterInstance, run_id: str) -> None:
    """The run ends (as a launched run would report it), freeing its slot."""
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.STARTING
    instance.report_run_failed(run, "ended by the test to free its slot")


def test_one_tenants_runs_wait_while_another_tenant_is_dequeued(platform_home: Path) -> None:
    settings = Settings(home=platform_home, runs_per_tenant=PER_TENANT)
    dagster_home = ensure_dagster_home(settings, export=False)
    with (dagster_home / "dagster.yaml").open("a", encoding="utf-8") as config:
        config.write(RECORDING_LAUNCHER)
    with ExitStack() as stack:
        instance = stack.enter_context(dg.DagsterInstance.from_config(str(dagster_home)))
        workspace = stack.enter_context(
            WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(LOCATION))
        )
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        request = workspace.create_request_context()
        [repository] = request.get_code_location("agent_platform").get_repositories().values()
        remote_job = repository.get_full_job("knowledge_job")
        from agent_platform.definitions import defs  # the module the location just loaded

        job = defs.resolve_job_def("knowledge_job")

        def submit(tenant: str) -> str:
            """Submit a run of one tenant's partition, as the UI's launch button does."""
            run = instance.create_run_for_job(
                job,
                tags={TENANT_PARTITION_TAG: tenant},
                status=dg.DagsterRunStatus.NOT_STARTED,
                remote_job_origin=remote_job.get_remote_origin(),
                job_code_origin=remote_job.get_python_origin(),
            )
            assert instance.submit_run(run.run_id, request).status == dg.DagsterRunStatus.QUEUED
            return run.run_id

        # a big ingest: five runs of one tenant queued first, then one run of another tenant
        alpha = [submit("alpha") for _ in range(5)]
        beta = submit("beta")
        daemon = stack.enter_context(QueuedRunCoordinatorDaemon(interval_seconds=1))

        def iterate() -> Counter[str]:
            list(daemon.run_iteration(workspace))
            return _in_progress(instance)

        # the first iteration dequeues alpha's first two and beta's run, though beta came last
        assert iterate() == {"alpha": PER_TENANT, "beta": 1}
        assert _queued(instance) == sorted(alpha[PER_TENANT:])
        assert instance.get_run_by_id(beta).status == dg.DagsterRunStatus.STARTING
        # nothing more for alpha while both its slots are held
        assert iterate() == {"alpha": PER_TENANT, "beta": 1}

        # one of alpha's runs finishes: exactly one more of alpha's is dequeued, never three
        _finish(instance, alpha[0])
        assert iterate() == {"alpha": PER_TENANT, "beta": 1}
        assert _queued(instance) == sorted(alpha[PER_TENANT + 1 :])
        # both finish: the last two go, and the queue is empty
        _finish(instance, alpha[1])
        _finish(instance, alpha[2])
        assert iterate() == {"alpha": PER_TENANT, "beta": 1}
        assert _queued(instance) == []
