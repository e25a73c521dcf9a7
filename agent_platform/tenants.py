"""Tenant names and the registry of where each tenant's documents come from."""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TENANT_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_TENANT_NAME_LENGTH = 63


class InvalidTenantNameError(ValueError):
    """A tenant name that cannot be a partition key, a directory and a Weaviate tenant."""


class UnknownTenantError(LookupError):
    """A command needs a registered tenant (`agent-platform ingest` registers it)."""


class SourceDirectoryConflictError(ValueError):
    """Registering a tenant with a directory other than the one it is registered with."""


def validate_tenant_name(name: str) -> str:
    """Return `name` if it is a valid tenant name, else raise with the reason.

    Names become directory names, Dagster partition keys and Weaviate tenants, so they are limited
    to lower-case letters, digits, `-` and `_`, start with a letter or digit, and are at most 63
    characters long.
    """
    if not isinstance(name, str) or not name:
        raise InvalidTenantNameError("tenant name is empty")
    if "/" in name or "\\" in name or os.sep in name:
        raise InvalidTenantNameError(f"tenant name {name!r} contains a path separator")
    if ".." in name or name in {".", ".."}:
        raise InvalidTenantNameError(f"tenant name {name!r} contains '..'")
    if len(name) > MAX_TENANT_NAME_LENGTH:
        raise InvalidTenantNameError(
            f"tenant name {name[:20]!r}... is {len(name)} characters long; "
            f"the limit is {MAX_TENANT_NAME_LENGTH}"
        )
    if not TENANT_NAME_PATTERN.match(name):
        raise InvalidTenantNameError(
            f"tenant name {name!r} is invalid: use lower-case letters, digits, '-' and '_', "
            "starting with a letter or digit"
        )
    return name


class TenantRegistry:
    """Maps tenant names to their source directories, in a small JSON file under the home dir.

    The file is replaced atomically so a crash never leaves a half-written registry, and changed
    under a lock so concurrent registrations never lose one another. A tenant's directory only
    changes when the caller says so (`change=True`).
    """

    def __init__(self, path: Path) -> None:
        self._path = path

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.with_name(f".{self._path.name}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self) -> dict[str, str]:
        if not self._path.exists():
            return {}
        registry: dict[str, str] = json.loads(self._path.read_text(encoding="utf-8"))
        return registry

    def _write(self, data: dict[str, str]) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".tenants-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        Path(tmp).replace(self._path)

    def register(self, tenant: str, source_dir: Path, *, change: bool = False) -> Path:
        """Record a tenant's source directory; returns the resolved directory.

        A tenant already registered with another directory keeps it unless `change` is true:
        re-pointing a tenant replaces its whole knowledge base, so it must never happen by a typo
        or by a second ingest racing the first.
        """
        validate_tenant_name(tenant)
        resolved = Path(source_dir).expanduser().resolve()
        if not resolved.is_dir():
            raise NotADirectoryError(f"source directory {str(source_dir)!r} is not a directory")
        with self._locked():
            data = self._read()
            registered = data.get(tenant)
            if registered is not None and registered != str(resolved) and not change:
                raise SourceDirectoryConflictError(
                    f"tenant {tenant!r} is registered with source directory {registered}, not "
                    f"{resolved}; ingest {registered}, or pass --change-source to re-point the "
                    "tenant (documents not in the new directory leave its index)"
                )
            if registered != str(resolved):
                data[tenant] = str(resolved)
                self._write(data)
        return resolved

    def require(self, tenant: str) -> str:
        """`tenant` if it is registered, else `UnknownTenantError` naming the command to run."""
        validate_tenant_name(tenant)
        if tenant not in self._read():
            raise UnknownTenantError(
                f"tenant: unknown tenant {tenant!r}; register and index it with "
                f"`agent-platform ingest --tenant {tenant} DIR`"
            )
        return tenant

    def source_dir(self, tenant: str) -> Path:
        validate_tenant_name(tenant)
        data = self._read()
        if tenant not in data:
            raise KeyError(
                f"tenant {tenant!r} has no registered source directory; "
                f"run `agent-platform ingest --tenant {tenant} DIR` first"
            )
        return Path(data[tenant])

    def tenants(self) -> dict[str, Path]:
        return {name: Path(path) for name, path in sorted(self._read().items())}
