"""One ingest of a tenant at a time, across threads and processes.

Two ingests of one tenant racing each other would interleave writes to the same tables and index
and could each report the other's documents. The CLI holds this lock from registering the source
directory until the job's summary is read, so concurrent ingests run one after the other and each
reports what it indexed.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from agent_platform.tenants import validate_tenant_name


def ingest_lock_path(home: Path, tenant: str) -> Path:
    return Path(home) / "locks" / f"ingest-{validate_tenant_name(tenant)}.lock"


@contextmanager
def tenant_ingest_lock(
    home: Path, tenant: str, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the tenant's ingest lock; `on_wait` hears once when another ingest holds it."""
    path = ingest_lock_path(home, tenant)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(f"another ingest of tenant {tenant!r} is running; waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
