"""Tenant names and the registry of where each tenant's documents come from."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

TENANT_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_TENANT_NAME_LENGTH = 63


class InvalidTenantNameError(ValueError):
    """A tenant name that cannot be a partition key, a directory and a Weaviate tenant."""


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

    The file is replaced atomically so a crash never leaves a half-written registry.
    """

    def __init__(self, path: Path) -> None:
        self._path = path

    def _read(self) -> dict[str, str]:
        if not self._path.exists():
            return {}
        return json.loads(self._path.read_text(encoding="utf-8"))

    def _write(self, data: dict[str, str]) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".tenants-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        Path(tmp).replace(self._path)

    def register(self, tenant: str, source_dir: Path) -> Path:
        """Record (or move) a tenant's source directory; returns the resolved directory."""
        validate_tenant_name(tenant)
        resolved = Path(source_dir).expanduser().resolve()
        if not resolved.is_dir():
            raise NotADirectoryError(f"source directory {str(source_dir)!r} is not a directory")
        data = self._read()
        data[tenant] = str(resolved)
        self._write(data)
        return resolved

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
