"""The key ring: per-tenant data keys (DEKs), wrapped by the key-encryption key (KEK).

Each tenant has versioned 256-bit data keys. Values are sealed with the tenant's newest version;
any version still decrypts what it sealed. Unwrapped keys are cached in process memory; which
version is newest is re-read at most every `cache_ttl_s`, so a rotation done by another process
(the Dagster schedule) reaches serving processes within that time, and until then they keep
sealing with a version that still decrypts everywhere.
"""

from __future__ import annotations

import json
import threading
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent_platform.security.crypto.errors import KeyServiceError
from agent_platform.security.crypto.kek import KeyEncryptionKey
from agent_platform.security.crypto.keystore import DataKeyStore, WrappedKey


def wrap_context(tenant: str, version: int) -> bytes:
    """Associated data of a wrapped data key: the key belongs to this tenant and version only."""
    return json.dumps(["data-key", tenant, version], separators=(",", ":")).encode()


class KeyRing:
    def __init__(self, kek: KeyEncryptionKey, store: DataKeyStore, *, cache_ttl_s: float = 30.0):
        self.kek = kek
        self.store = store
        self.cache_ttl_s = cache_ttl_s
        self._keys: dict[tuple[str, int], AESGCM] = {}
        self._current: dict[str, tuple[int, float]] = {}  # tenant -> (version, read at)
        self._lock = threading.Lock()

    def current(self, tenant: str) -> tuple[int, AESGCM]:
        """The tenant's newest data key (created on the tenant's first write)."""
        cached = self._current.get(tenant)
        if cached is not None and time.monotonic() - cached[1] < self.cache_ttl_s:
            return cached[0], self.key(tenant, cached[0])
        with self._lock:
            latest = self.store.latest(tenant)
            if latest is None:
                latest = self._create(tenant, 1)
            self._keys.setdefault((tenant, latest.version), self._unwrap(latest))
            self._current[tenant] = (latest.version, time.monotonic())
        return latest.version, self._keys[(tenant, latest.version)]

    def key(self, tenant: str, version: int) -> AESGCM:
        """The tenant's data key `version` (KeyServiceError when there is none)."""
        key = self._keys.get((tenant, version))
        if key is not None:
            return key
        wrapped = self.store.get(tenant, version)
        if wrapped is None:
            raise KeyServiceError(
                f"encryption: tenant {tenant!r} has no data key v{version} in the key store"
            )
        key = self._unwrap(wrapped)
        self._keys[(tenant, version)] = key
        return key

    def add_version(self, tenant: str) -> int:
        """A new newest data key for `tenant` (rotation); returns its version."""
        with self._lock:
            latest = self.store.latest(tenant)
            created = self._create(tenant, (latest.version if latest else 0) + 1)
            self._current.pop(tenant, None)
            return created.version

    def _create(self, tenant: str, version: int) -> WrappedKey:
        data_key = AESGCM.generate_key(bit_length=256)
        kek_version, wrapped = self.kek.wrap(data_key, wrap_context(tenant, version))
        row = WrappedKey(tenant, version, kek_version, wrapped, time.time())
        if not self.store.insert(row):  # another process created it first: use theirs
            existing = self.store.get(tenant, version)
            assert existing is not None  # nosec B101  # narrows a type for mypy; the invariant holds by construction
            return existing
        self._keys[(tenant, version)] = AESGCM(data_key)
        return row

    def _unwrap(self, row: WrappedKey) -> AESGCM:
        try:
            data_key = self.kek.unwrap(
                row.kek_version, row.wrapped, wrap_context(row.tenant, row.version)
            )
        except KeyServiceError:
            fresh = self.store.get(row.tenant, row.version)  # re-wrapped meanwhile by a rotation?
            if fresh is None or fresh == row:
                raise
            data_key = self.kek.unwrap(
                fresh.kek_version, fresh.wrapped, wrap_context(fresh.tenant, fresh.version)
            )
        return AESGCM(data_key)

    def check(self) -> None:
        """Fail now (KeyServiceError) when the KEK cannot unwrap a stored data key."""
        for tenant in self.store.tenants()[:1]:
            latest = self.store.latest(tenant)
            if latest is not None:
                self._unwrap(latest)
