"""Build the key ring and the value cipher the settings call for (one per process and source).

Key-encryption key, first found: `encryption.kms_url` (Vault transit),
`AGENT_PLATFORM_ENCRYPTION_KEK`, `encryption.kek_file`, and in the `local` profile only
`<home>/keys/kek.json`, generated on first use (0600). `production` accepts only a key
service: without one it fails closed at start.
Wrapped data keys live in PostgreSQL in `production`, in `<home>/keys/data_keys.sqlite` locally.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from agent_platform.security.crypto.cipher import PLAINTEXT, FieldCipher, ValueCipher
from agent_platform.security.crypto.errors import KeyServiceError
from agent_platform.security.crypto.kek import EnvironmentKek, KeyEncryptionKey, LocalKeyFile
from agent_platform.security.crypto.keyring import KeyRing
from agent_platform.security.crypto.keystore import (
    DataKeyStore,
    PostgresDataKeyStore,
    SQLiteDataKeyStore,
)
from agent_platform.security.private_files import private_dir

_rings: dict[tuple[Any, ...], KeyRing] = {}
_lock = threading.Lock()


def keys_dir(settings: Any) -> Any:
    return settings.home_dir / "keys"


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def _ring_key(settings: Any) -> tuple[Any, ...]:
    e = settings.encryption
    kek = _secret(e.kek)
    return (
        settings.profile,
        str(settings.home_dir),
        e.kms_url,
        hashlib.sha256(kek.encode()).hexdigest() if kek else None,
        str(e.kek_file) if e.kek_file else None,
        settings.postgres_url if settings.profile == "production" else None,
    )


def open_data_key_store(settings: Any) -> DataKeyStore:
    if settings.profile == "production":
        if not settings.postgres_url:
            raise KeyServiceError(
                "encryption: production keeps data keys in PostgreSQL; "
                "set AGENT_PLATFORM_POSTGRES_URL"
            )
        return PostgresDataKeyStore(settings.postgres_url)
    return SQLiteDataKeyStore(private_dir(keys_dir(settings)) / "data_keys.sqlite")


def open_kek(settings: Any, store: DataKeyStore | None) -> KeyEncryptionKey:
    """The configured key-encryption key (KeyServiceError, one line, when there is none)."""
    e = settings.encryption
    if e.kms_url:
        from agent_platform.security.crypto.vault import VaultTransitKek

        return VaultTransitKek(e.kms_url, _secret(e.kms_token))
    if settings.profile == "production":
        raise KeyServiceError(
            "encryption: profile 'production' needs a key service; set "
            "AGENT_PLATFORM_ENCRYPTION_KMS_URL (and _KMS_TOKEN)"
        )
    if e.kek is not None:
        return EnvironmentKek(_secret(e.kek) or "")
    if e.kek_file is not None:
        return LocalKeyFile(e.kek_file.expanduser(), create=False)
    path = keys_dir(settings) / "kek.json"
    if not path.exists() and store is not None and (wrapped := store.count()):
        raise KeyServiceError(
            f"encryption: key file {path} is missing but {wrapped} data keys are wrapped by it; "
            "restore it (or set AGENT_PLATFORM_ENCRYPTION_KEK)"
        )
    return LocalKeyFile(path, create=True)


def open_key_ring(settings: Any) -> KeyRing:
    """The process's key ring for these settings; checks the KEK unwraps a stored key."""
    cache_key = _ring_key(settings)
    with _lock:
        ring = _rings.get(cache_key)
        if ring is None:
            if settings.profile == "production" and not settings.encryption.kms_url:
                open_kek(settings, None)  # raises: production needs a key service
            store = open_data_key_store(settings)
            ring = KeyRing(open_kek(settings, store), store)
            ring.check()
            _rings[cache_key] = ring
        return ring


def value_cipher(settings: Any) -> ValueCipher:
    """The cipher the stores use: AES-256-GCM when encryption is on, else plaintext.

    Encryption cannot be turned off in `production` (fail closed, one line).
    """
    if not settings.encryption.enabled:
        if settings.profile == "production":
            raise KeyServiceError("encryption: cannot be turned off in profile 'production'")
        return PLAINTEXT
    return FieldCipher(
        open_key_ring(settings), accept_plaintext=settings.encryption.accept_plaintext
    )


def forget_key_rings() -> None:
    """Drop cached rings (tests that swap keys within one process)."""
    with _lock:
        _rings.clear()
