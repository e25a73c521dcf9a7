"""Encryption at rest: AES-256-GCM envelope encryption with per-tenant data keys.

`value_cipher(settings)` is what the stores use; `rotate_keys` / `key_status` what the CLI and the
Dagster schedule call. See docs/data-protection.md for what is encrypted and what is not.
"""

from agent_platform.security.crypto.cipher import PLAINTEXT, FieldCipher, ValueCipher
from agent_platform.security.crypto.errors import DecryptionError, EncryptionError, KeyServiceError
from agent_platform.security.crypto.factory import (
    forget_key_rings,
    open_key_ring,
    value_cipher,
)
from agent_platform.security.crypto.rotation import (
    KeyStatus,
    RotationReport,
    key_status,
    rotate_keys,
)

__all__ = [
    "PLAINTEXT",
    "DecryptionError",
    "EncryptionError",
    "FieldCipher",
    "KeyServiceError",
    "KeyStatus",
    "RotationReport",
    "ValueCipher",
    "forget_key_rings",
    "key_status",
    "open_key_ring",
    "rotate_keys",
    "value_cipher",
]
