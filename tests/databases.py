"""A PostgreSQL database of its own for one test, on the machine's server: tables a test creates
(Dagster's, MLflow's, the data-key store's) never meet another test's, and are dropped after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def scratch_database(postgres_url: str, prefix: str) -> Iterator[str]:
    """The URL of a new database named `<prefix>_<random>`, dropped (connections and all) after."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
