"""The MLflow store under the platform home: created with its artifact root, and used by MLflow's
fluent APIs (GenAI evaluation, logged models) without leaving a process-wide URI behind.

An SQLite store created by a bare `MlflowClient` puts the `Default` experiment's artifacts in
`./mlruns` of whatever directory the process ran in; `ensure_store` creates it with the configured
root instead (and repairs a copied store whose `Default` points elsewhere).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

import mlflow

_LOCK = threading.RLock()
_READY: set[tuple[str, str]] = set()


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of an SQLite tracking URI (None for a server or another database)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(unquote(tracking_uri.removeprefix("sqlite:///")))


def default_artifact_root(tracking_uri: str, artifact_root: str | None = None) -> str | None:
    """`artifact_root`, else `<db dir>/artifacts` for SQLite (where `Settings` puts it)."""
    if artifact_root:
        return artifact_root.rstrip("/")
    path = sqlite_path(tracking_uri)
    return (path.parent / "artifacts").resolve().as_uri() if path else None


def ensure_store(tracking_uri: str, artifact_root: str | None = None) -> None:
    """Create a missing SQLite store with its `Default` experiment under the artifact root, and
    point an existing store's `Default` there when it lies elsewhere. Servers are left alone."""
    path, root = sqlite_path(tracking_uri), default_artifact_root(tracking_uri, artifact_root)
    if path is None or root is None or (tracking_uri, root) in _READY:
        return
    with _LOCK:
        if not path.exists():
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            path.parent.mkdir(parents=True, exist_ok=True)
            SqlAlchemyStore(tracking_uri, root)  # creates the schema and `Default`
        with sqlite3.connect(path) as db:
            db.execute(
                "UPDATE experiments SET artifact_location = ? "
                "WHERE experiment_id = 0 AND artifact_location NOT LIKE ?",
                (f"{root}/0", f"{root}/%"),
            )
        _READY.add((tracking_uri, root))


@contextmanager
def using_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at `tracking_uri` for the block, then restore what was set.

    `mlflow.genai.evaluate` and the registry's logged-model lookups read the global URI; the
    library never leaves it changed (a serving process may talk to several stores)."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with _LOCK:
        saved = tracking_utils._tracking_uri, registry_utils._registry_uri
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        try:
            yield
        finally:
            tracking_utils._tracking_uri, registry_utils._registry_uri = saved
