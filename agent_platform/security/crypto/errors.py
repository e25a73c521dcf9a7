"""The errors of encryption at rest: each message is one line naming what failed and why."""

from __future__ import annotations


class EncryptionError(RuntimeError):
    """Encryption at rest cannot proceed, so nothing is read or written (fail closed)."""


class KeyServiceError(EncryptionError):
    """The key-encryption key is missing, wrong or unreachable, or no key service is configured."""


class DecryptionError(EncryptionError):
    """A stored value did not authenticate: tampered, moved to another record, or a wrong key."""
