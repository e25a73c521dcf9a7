"""Shared fixtures: an isolated AGENT_PLATFORM_HOME per test, and real-service guards.

Services (PostgreSQL, Redis) are used for real. When one is missing a test skips with the reason,
except under CI=true, where a missing service is a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.homes import MODEL_CACHE

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One export of the embedding model's graphs for every test home and worker (and the processes
# they start), instead of one per fresh home: keyed by the weights' digest, written atomically.
os.environ.setdefault("AGENT_PLATFORM_EMBEDDING_EXPORT_DIR", str(MODEL_CACHE / "embedding-exports"))

POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (locally) or fail (CI=true) when a service the test needs is not reachable."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module", autouse=True)
def no_event_loop_left_running() -> Any:
    """A module must not leave an event loop marked running in the test thread (Playwright's
    sync API does until it stops): every later `asyncio.run` on the worker, and Dagster's own
    loop in each in-process run, would fail in some unrelated module."""
    yield
    try:
        leaked = asyncio.get_running_loop()
    except RuntimeError:
        return
    pytest.fail(f"this module left an event loop running in the test thread: {leaked!r}")


@pytest.fixture
def postgres_url() -> str:
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    return POSTGRES_URL


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    return REDIS_URL


@pytest.fixture
def platform_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh AGENT_PLATFORM_HOME (and DAGSTER_HOME inside it) for one test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("AGENT_PLATFORM_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir()
    monkeypatch.delenv("AGENT_PLATFORM_CONFIG_FILE", raising=False)
    monkeypatch.delenv("AGENT_PLATFORM_PROFILE", raising=False)
    return home


@pytest.fixture
def settings(platform_home: Path):
    from agent_platform.settings import Settings

    return Settings(home=platform_home)


@pytest.fixture(scope="session")
def migrated_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store migrated once per session (the migration takes seconds)."""
    from agent_platform.model_registry.store import ensure_store

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    ensure_store(f"sqlite:///{path}")  # creates and migrates the schema (Default under its dir)
    return path


@pytest.fixture
def mlflow_settings(settings, migrated_mlflow_db: Path):
    """`settings` whose MLflow store (the default SQLite under home) already has its schema."""
    target = settings.home_dir / "mlflow" / "mlflow.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_mlflow_db, target)
    return settings


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2 model, loaded once per session (no cache)."""
    from agent_platform.knowledge.embedder import Embedder
    from agent_platform.settings import EmbeddingSettings

    return Embedder(EmbeddingSettings())


@pytest.fixture(scope="session")
def sample_home(tmp_path_factory: pytest.TempPathFactory, migrated_mlflow_db: Path) -> Path:
    """A home with the sample tenant (the project's docs/) indexed by the real knowledge job, its
    snapshot taken, and the shipped prompts registered in MLflow: built once per session, copied
    by the evaluation tests and the Celery test."""
    from agent_platform.cli.execution import run_tenant_job
    from agent_platform.prompts import MlflowPromptStore, PromptRepository, publish_prompt
    from agent_platform.prompts.repository import BUILTIN_PROMPTS_DIR
    from agent_platform.settings import Settings
    from tests.homes import home_environment, index_tenant

    home = tmp_path_factory.mktemp("sample-home")
    (home / "mlflow").mkdir()
    shutil.copyfile(migrated_mlflow_db, home / "mlflow" / "mlflow.db")
    settings = Settings(home=home)
    index_tenant(settings, "sample", PROJECT_ROOT / "docs")
    with home_environment(home):
        backup = run_tenant_job(settings, "index_backup_job", "sample")
        assert backup.success, backup.failures
        repo = PromptRepository.from_dirs([BUILTIN_PROMPTS_DIR])
        store = MlflowPromptStore(settings.resolved_mlflow_tracking_uri)
        for name in repo.names():
            publish_prompt(repo, store, name)
    return home


# Directories whose session-scoped fixtures start servers or build indexed homes: all their tests
# go to one xdist worker, so each of those is built once per run, not once per worker. Elsewhere a
# test file is the unit of distribution (module-scoped fixtures are built once).
SHARED_SESSION_DIRS = {
    "evaluation": "evaluation",
    "gateway": "serving",
    "security": "serving",  # its gateway reuses tests/gateway's indexed home
    "langchain": "langchain",
    "operations": "operations",
    "runtime": "runtime",
    "ui": "ui",
    "vectorstore": "vectorstore",
}


def distribution_group(nodeid: str) -> str:
    """The unit of work a test belongs to under `pytest -n N` (make test)."""
    path = nodeid.split("::", 1)[0]
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "tests" and parts[1] in SHARED_SESSION_DIRS:
        return SHARED_SESSION_DIRS[parts[1]]
    return path


# The groups on the critical path, longest first (measured 2026-12-07: the Dagster UI fixture runs
# the whole demo before `dagster dev`; the evaluation end-to-end tests; the live rollouts; Celery).
# Under xdist they are handed out first, so no long group starts when the others are done.
LONGEST_FIRST = [
    "ui",
    "evaluation",
    "tests/delivery/test_rollout_live.py",
    "tests/test_dagster_celery.py",
    "serving",
    "runtime",
    "tests/test_tenant_isolation.py",
]


def _start_order(item: pytest.Item) -> int:
    group = distribution_group(item.nodeid)
    return LONGEST_FIRST.index(group) if group in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker, the long groups first (a stable sort: order within a group is kept);
    a run in one process keeps the collection order."""
    if hasattr(config, "workerinput"):
        items.sort(key=_start_order)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scope scheduler, with `distribution_group` as the scope, handed out in the order the
    workers collected them (`LONGEST_FIRST`, then the collection order). Not `--dist loadgroup`
    with marks: with pytest 9.2 it silently stops grouping (pytest-dev/pytest-xdist#1386)."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return distribution_group(nodeid)

    config.option.loadscopereorder = False  # not by test count: a few UI tests outlast hundreds
    return GroupScheduling(config, log)
