"""AES-256-GCM sealing of one stored value, as a text token that fits TEXT, JSONB and Redis.

Token: `enc:v1:<data-key version>:<base64url(nonce || ciphertext+tag)>`. The nonce is 96 random
bits per value. The associated data binds the value to where it belongs (tenant, table, record id,
data-key version), so a ciphertext copied into another record, table or tenant fails to
authenticate instead of decrypting there.
"""

from __future__ import annotations

import base64
import binascii
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent_platform.security.crypto.errors import DecryptionError

PREFIX = "enc:v1:"
NONCE_BYTES = 12


def associated_data(tenant: str, table: str, record_id: str, version: int) -> bytes:
    """The unambiguous encoding of where a value lives (JSON, so no separator can collide)."""
    return json.dumps([tenant, table, record_id, version], separators=(",", ":")).encode()


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def seal(key: AESGCM, version: int, plaintext: str, aad: bytes) -> str:
    nonce = os.urandom(NONCE_BYTES)
    body = nonce + key.encrypt(nonce, plaintext.encode("utf-8"), aad)
    return f"{PREFIX}{version}:{base64.urlsafe_b64encode(body).decode('ascii')}"


def token_version(token: str, where: str) -> int:
    """The data-key version a token names (DecryptionError when the token is malformed)."""
    try:
        version, _ = token[len(PREFIX) :].split(":", 1)
        return int(version)
    except ValueError:
        raise DecryptionError(f"{where}: malformed ciphertext (no key version)") from None


def open_sealed(key: AESGCM, token: str, aad: bytes, where: str) -> str:
    """The plaintext of `token`; DecryptionError (never garbage) when it does not authenticate."""
    try:
        body = base64.urlsafe_b64decode(token[len(PREFIX) :].split(":", 1)[1])
    except (IndexError, ValueError, binascii.Error):
        raise DecryptionError(f"{where}: malformed ciphertext (not base64)") from None
    if len(body) < NONCE_BYTES + 16:
        raise DecryptionError(f"{where}: malformed ciphertext (too short)")
    try:
        return key.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], aad).decode("utf-8")
    except InvalidTag:
        raise DecryptionError(
            f"{where}: ciphertext failed authentication (tampered, moved from another record, "
            "or written under another key)"
        ) from None
