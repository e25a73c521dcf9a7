"""`agent-platform worker`: a dagster-celery worker for runs with `executor = "celery"`.

The worker runs the steps that runs queue on `celery.queue` (RabbitMQ by default). It is
`dagster-celery worker start` with the broker, backend and queue taken from the settings, so the
worker and the runs that queue work for it cannot disagree. The worker needs the same settings and
DAGSTER_HOME as the processes that launch runs (one instance: SQLite on a shared disk, or
PostgreSQL in production). The broker URL reaches dagster-celery through the environment, never
through a file.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from agent_platform.dagster_home import ensure_dagster_home
from agent_platform.settings import Settings, get_settings

BROKER_ENV = "AGENT_PLATFORM_CELERY__BROKER_URL"
BACKEND_ENV = "AGENT_PLATFORM_CELERY__BACKEND"
WORKER_CONFIG = """\
# Written by agent-platform: the Celery executor's settings for `dagster-celery worker start`.
execution:
  config:
    broker:
      env: AGENT_PLATFORM_CELERY__BROKER_URL
    backend:
      env: AGENT_PLATFORM_CELERY__BACKEND
"""


class WorkerNotInstalledError(RuntimeError):
    """dagster-celery is missing: the operator's setup to fix, not a platform fault."""


def worker_command(settings: Settings, *, name: str | None, concurrency: int) -> list[str]:
    """The `dagster-celery worker start` command line for the settings' queue."""
    home = ensure_dagster_home(settings)
    config = home / "celery-worker.yaml"
    config.write_text(WORKER_CONFIG, encoding="utf-8")
    command = [_dagster_celery(), "worker", "start", "-A", "dagster_celery.app"]
    command += ["-y", str(config), "-q", settings.celery.queue, "--loglevel", "WARNING"]
    if name:
        command += ["--name", name]
    # solo: steps run in the worker process itself (one at a time), so each worker holds one
    # copy of the embedding model; more at once means more workers or --concurrency (prefork).
    pool = ["--pool=solo"] if concurrency == 1 else [f"--concurrency={concurrency}"]
    return [*command, "--", *pool]


def _dagster_celery() -> str:
    beside = Path(sys.executable).with_name("dagster-celery")
    if beside.exists():
        return str(beside)
    found = shutil.which("dagster-celery")
    if found is None:
        raise WorkerNotInstalledError("dagster-celery: not installed; pip install dagster-celery")
    return found


def worker(
    name: Annotated[str | None, typer.Option(help="Worker name (default: a unique one).")] = None,
    concurrency: Annotated[
        int, typer.Option(help="Steps run at once (1: in the worker process itself).", min=1)
    ] = 1,
) -> None:
    """Run a Celery worker that executes the steps of runs with executor `celery`."""
    settings = get_settings()
    command = worker_command(settings, name=name, concurrency=concurrency)
    env = {
        **os.environ,
        BROKER_ENV: settings.celery.broker_url,
        BACKEND_ENV: settings.celery.backend,
    }
    # celery itself is found on PATH by dagster-celery: put this interpreter's bin first
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    os.execve(command[0], command, env)  # nosec B606  # execs the worker's own interpreter with fixed arguments
