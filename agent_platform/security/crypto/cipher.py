"""What the stores call: seal a text value for (tenant, table, record id), open it again.

`FieldCipher` encrypts with the tenant's data key; `PLAINTEXT` is the null cipher (encryption
off, or stores built directly in tests). Opening a value that is not sealed fails closed unless
`accept_plaintext` (a migration aid for values written before encryption was turned on).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from agent_platform.security.crypto import envelope
from agent_platform.security.crypto.errors import DecryptionError
from agent_platform.security.crypto.keyring import KeyRing


@runtime_checkable
class ValueCipher(Protocol):
    enabled: bool

    def seal(self, tenant: str, table: str, record_id: str, plaintext: str) -> str: ...

    def open(self, tenant: str, table: str, record_id: str, stored: str) -> str: ...


class PlaintextCipher:
    """Stores values as they are (encryption off)."""

    enabled = False

    def seal(self, tenant: str, table: str, record_id: str, plaintext: str) -> str:
        return plaintext

    def open(self, tenant: str, table: str, record_id: str, stored: str) -> str:
        if envelope.is_sealed(stored):
            raise DecryptionError(
                f"{table} of tenant {tenant!r}: the value is encrypted but encryption is off "
                "(set AGENT_PLATFORM_ENCRYPTION_ENABLED=true and the key that sealed it)"
            )
        return stored


PLAINTEXT = PlaintextCipher()


class FieldCipher:
    """AES-256-GCM per value under the tenant's data key, bound to its table and record."""

    enabled = True

    def __init__(self, ring: KeyRing, *, accept_plaintext: bool = False) -> None:
        self.ring = ring
        self.accept_plaintext = accept_plaintext

    def seal(self, tenant: str, table: str, record_id: str, plaintext: str) -> str:
        version, key = self.ring.current(tenant)
        aad = envelope.associated_data(tenant, table, record_id, version)
        return envelope.seal(key, version, plaintext, aad)

    def open(self, tenant: str, table: str, record_id: str, stored: str) -> str:
        where = f"{table} of tenant {tenant!r}"
        if not isinstance(stored, str) or not envelope.is_sealed(stored):
            if self.accept_plaintext and isinstance(stored, str):
                return stored
            raise DecryptionError(
                f"{where}: the stored value is not encrypted; refused (set "
                "AGENT_PLATFORM_ENCRYPTION_ACCEPT_PLAINTEXT=true only to read data written "
                "before encryption was on)"
            )
        version = envelope.token_version(stored, where)
        key = self.ring.key(tenant, version)
        aad = envelope.associated_data(tenant, table, record_id, version)
        return envelope.open_sealed(key, stored, aad, where)
