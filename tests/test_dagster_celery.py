"""Dagster on Celery for real: two `agent-platform worker` processes (dagster-celery) on the
machine's RabbitMQ run the knowledge job's steps for two tenants and the evaluation job's steps,
and the results are the same as in process. The workers serve a copy of the session's sample home
(the sample tenant indexed, the shipped prompts registered: what the evaluation plan needs). The
queue name is unique to the module, so other test runs on the broker never take its steps."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psutil
import pytest

from agent_platform.cli.execution import JobOutcome, run_job, run_tenant_job
from agent_platform.dagster_home import ensure_dagster_home
from agent_platform.knowledge.service import KnowledgeBase
from agent_platform.settings import Settings
from agent_platform.tenants import TenantRegistry
from tests.conftest import require_service

REPO = Path(__file__).resolve().parents[1]
BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
CORPORA = {
    "alpha": {
        "refunds.md": "# Refunds\n\nRefunds are paid back within 5 business days of approval.",
        "shipping.md": "# Shipping\n\nStandard shipping takes 3 to 5 business days.",
    },
    "beta": {
        "rotation.md": "# Keys\n\nData keys are rotated every 90 days by the key rotation job.",
        "backup.txt": "Index snapshots are taken daily at 02:00 and kept for 30 days.",
    },
}


# The evaluation round: the extractive candidate on the first examples of the shipped dataset.
# The latency budget is lifted on both sides: latency is the one metric that depends on where a
# step ran (and on the machine's load), so the gates compare only what must not differ.
EVALUATION_CONFIG = {
    "ops": {
        "evaluated_model_versions": {"config": {"candidates": ["extractive"], "max_examples": 6}}
    }
}
LATENCY_BUDGET_MS = "600000"


def _environment(home: Path, queue: str) -> dict[str, str]:
    return {
        "AGENT_PLATFORM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "AGENT_PLATFORM_EXECUTOR": "celery",
        "AGENT_PLATFORM_CELERY__BROKER_URL": BROKER,
        "AGENT_PLATFORM_CELERY__QUEUE": queue,
        "AGENT_PLATFORM_GATES_LATENCY_P95_MS": LATENCY_BUDGET_MS,
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, sample_home: Path) -> Iterator[dict]:
    """A copy of the sample home with both tenants registered too, and two workers listening on
    a queue of its own."""
    require_service("RabbitMQ", "127.0.0.1", 5672)
    root = tmp_path_factory.mktemp("celery")
    home = root / "home"
    shutil.copytree(sample_home, home)
    registry = TenantRegistry(Settings(home=home).tenant_registry_path)
    for tenant, files in CORPORA.items():
        corpus = root / tenant
        corpus.mkdir()
        for name, text in files.items():
            (corpus / name).write_text(text, encoding="utf-8")
        registry.register(tenant, corpus)
    ensure_dagster_home(Settings(home=home), export=False)  # before two workers race to write it
    queue = f"agent-platform-test-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, **_environment(home, queue), "PYTHONPATH": str(REPO)}
    env.pop("AGENT_PLATFORM_CONFIG_FILE", None)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "agent_platform.cli.main", "worker", "--name", f"{queue}-{i}"],
            env=env,
            stdout=(root / f"worker-{i}.log").open("wb"),
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        for i in (1, 2)
    ]
    try:
        yield {"root": root, "home": home, "queue": queue, "workers": workers}
    finally:
        for worker in workers:
            for process in [*psutil.Process(worker.pid).children(recursive=True), worker]:
                process.terminate()
            worker.wait(timeout=30)
        _delete_queue(queue)


def _delete_queue(queue: str) -> None:
    """Steps were queued on a durable queue (and exchange) named for this module: remove both."""
    from kombu import Connection

    with Connection(BROKER) as connection:
        channel = connection.default_channel
        channel.queue_delete(queue)
        channel.exchange_delete(queue)


def _worker_pids(workers: list[subprocess.Popen]) -> set[int]:
    pids = set()
    for worker in workers:
        process = psutil.Process(worker.pid)
        pids |= {process.pid, *(child.pid for child in process.children(recursive=True))}
    return pids


def _step_pids(home: Path, run_id: str) -> dict[str, int]:
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        records = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
    return {r.dagster_event.step_key: r.dagster_event.pid for r in records if r.dagster_event}


def test_knowledge_job_steps_run_on_celery_workers_as_in_process(
    cluster: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = cluster["home"]
    distributed = _use_cluster(cluster, monkeypatch)
    outcomes = {tenant: run_tenant_job(distributed, "knowledge_job", tenant) for tenant in CORPORA}

    workers = _worker_pids(cluster["workers"])
    for tenant, outcome in outcomes.items():
        assert outcome.success, outcome.failures
        steps = _step_pids(home, outcome.run_id)
        # every step of the job (assets and their blocking checks) ran in a worker's process
        assert {"source_documents", "embeddings", "vector_index"} <= set(steps)
        assert set(steps.values()) <= workers, (tenant, steps, workers)
        assert os.getpid() not in steps.values()

    # The same tenant, in process on a home of its own: the same materializations and hits.
    local = _in_process(tmp_path / "local", monkeypatch)
    TenantRegistry(local.tenant_registry_path).register("alpha", cluster["root"] / "alpha")
    in_process = run_tenant_job(local, "knowledge_job", "alpha")
    assert in_process.success, in_process.failures
    assert in_process.metadata == outcomes["alpha"].metadata

    question = "How long until a refund is paid?"
    hits = {}
    for settings in (distributed, local):
        knowledge = KnowledgeBase(settings)
        try:
            hits[settings.executor] = [
                (h.chunk_id, round(h.score, 5)) for h in knowledge.search("alpha", question, k=3)
            ]
        finally:
            knowledge.close()
    assert hits["celery"] == hits["in_process"]
    assert hits["celery"]


def _use_cluster(cluster: dict, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """This process's settings pointed at the workers' home and queue (jobs are rebuilt from the
    environment's settings)."""
    for key, value in _environment(cluster["home"], cluster["queue"]).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AGENT_PLATFORM_CONFIG_FILE", raising=False)
    distributed = Settings()
    assert distributed.executor == "celery"
    return distributed


def _in_process(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("AGENT_PLATFORM_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("AGENT_PLATFORM_EXECUTOR", "in_process")
    return Settings()


def _round(outcome: JobOutcome) -> dict:
    """What an evaluation round decided, without the timings (they depend on the process)."""
    evaluated = outcome.metadata["evaluated_model_versions"]
    promotion = outcome.metadata["champion_promotion"]
    return {
        "metrics": {
            candidate: {k: v for k, v in metrics.items() if "latency" not in k}
            for candidate, metrics in evaluated["metrics"].items()
        },
        "challenger": evaluated["challenger_version"],
        "recommended": evaluated["promotion_recommended"],
        "failed_gates": sorted(outcome.failures),
        "decision": promotion["decision"],
        "promoted": promotion["promoted"],
    }


def test_evaluation_job_steps_run_on_celery_workers_as_in_process(
    cluster: dict, sample_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    distributed = _use_cluster(cluster, monkeypatch)
    outcome = run_job(distributed, "evaluation_job", run_config=EVALUATION_CONFIG)
    steps = _step_pids(cluster["home"], outcome.run_id)
    assert {"evaluation_dataset", "evaluated_model_versions", "champion_promotion"} <= set(steps)
    assert set(steps.values()) <= _worker_pids(cluster["workers"]), steps
    assert os.getpid() not in steps.values()

    # The same round in process, on another copy of the same home.
    local_home = tmp_path / "local"
    shutil.copytree(sample_home, local_home)
    in_process = run_job(
        _in_process(local_home, monkeypatch), "evaluation_job", run_config=EVALUATION_CONFIG
    )
    on_workers, here = _round(outcome), _round(in_process)
    assert on_workers == here
    metrics = on_workers["metrics"]["extractive"]
    assert metrics["examples"] == 6 and metrics["errors"] == 0
    assert not math.isnan(metrics["accuracy"])
    assert on_workers["challenger"] == 1  # the first version of a fresh registry, on both sides


def test_run_queue_limits_each_tenant(platform_home: Path) -> None:
    """The instance the platform writes queues runs with a limit per tenant (partition key)."""
    home = ensure_dagster_home(Settings(home=platform_home, runs_per_tenant=2), export=False)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        limits = instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
    assert limits == [
        {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 2}
    ]
