"""Key-encryption keys (KEKs): the versioned keys that wrap the tenants' data keys.

One small interface, three sources:

* `LocalKeyFile`: `<home>/keys/kek.json` (mode 0600, directory 0700), generated on first use in the
  `local` profile, or any file named by `encryption.kek_file`. Rotation adds a version to it.
* `EnvironmentKek`: `AGENT_PLATFORM_ENCRYPTION_KEK`, `base64key` or `1:base64key,2:base64key`.
  Rotation cannot write the environment: the operator adds the next version and rotates.
* `VaultTransitKek` (in `vault.py`): the production adapter; the key never leaves Vault.

Wrapping is AES-256-GCM with the data key's identity (tenant and version) as associated data, so a
wrapped key copied onto another tenant's row does not unwrap.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent_platform.security.crypto.errors import KeyServiceError
from agent_platform.security.private_files import FILE_MODE, private_dir

KEY_BYTES = 32
ENV_VAR = "AGENT_PLATFORM_ENCRYPTION_KEK"


@dataclass(frozen=True)
class KekVersion:
    version: int
    created_at: float | None
    retired_at: float | None = None


@runtime_checkable
class KeyEncryptionKey(Protocol):
    """Wraps and unwraps data keys; `source` names where the key lives (for messages)."""

    source: str

    def current_version(self) -> int: ...

    def wrap(self, data_key: bytes, context: bytes) -> tuple[int, bytes]:
        """`data_key` wrapped under the current version: (version, wrapped bytes)."""
        ...

    def unwrap(self, version: int, wrapped: bytes, context: bytes) -> bytes: ...

    def create_version(self) -> int | None:
        """Add a new current version and return it; None when this source cannot."""
        ...

    def versions(self) -> list[KekVersion]: ...

    def retire(self, versions: list[int]) -> None:
        """Mark versions no data key uses any more (kept, so older backups still restore)."""
        ...


def _wrap(key: bytes, data_key: bytes, context: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, data_key, context)


def _unwrap(source: str, version: int, key: bytes, wrapped: bytes, context: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(wrapped[:12], wrapped[12:], context)
    except InvalidTag:
        raise KeyServiceError(
            f"encryption: a data key does not unwrap with key-encryption key v{version} from "
            f"{source}: wrong key (the data was written under another one)"
        ) from None


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyServiceError(f"{where}: not a base64-encoded 256-bit key")
    return key


class _KeyMap:
    """Shared logic of the sources that hold key material in this process."""

    source: str
    _keys: dict[int, bytes]

    def current_version(self) -> int:
        return max(self._keys)

    def wrap(self, data_key: bytes, context: bytes) -> tuple[int, bytes]:
        version = self.current_version()
        return version, _wrap(self._keys[version], data_key, context)

    def unwrap(self, version: int, wrapped: bytes, context: bytes) -> bytes:
        key = self._key(version)
        return _unwrap(self.source, version, key, wrapped, context)

    def _key(self, version: int) -> bytes:
        if version not in self._keys:
            raise KeyServiceError(
                f"encryption: key-encryption key v{version} is not in {self.source} "
                f"(it holds {sorted(self._keys)})"
            )
        return self._keys[version]


class EnvironmentKek(_KeyMap):
    """Versions from `AGENT_PLATFORM_ENCRYPTION_KEK`: `key` (version 1) or `1:key,2:key`."""

    def __init__(self, value: str, name: str = ENV_VAR) -> None:
        self.source = name
        self._keys = {}
        for index, part in enumerate(p for p in value.split(",") if p.strip()):
            version_text, _, key_text = part.rpartition(":")
            try:
                version = int(version_text) if version_text else index + 1
            except ValueError:
                raise KeyServiceError(f"{name}: entry {index + 1} has no integer version") from None
            self._keys[version] = _decode_key(key_text, f"{name}: version {version}")
        if not self._keys:
            raise KeyServiceError(f"{name}: is empty")

    def create_version(self) -> int | None:
        return None

    def versions(self) -> list[KekVersion]:
        return [KekVersion(v, None) for v in sorted(self._keys)]

    def retire(self, versions: list[int]) -> None:
        return None


class LocalKeyFile(_KeyMap):
    """A JSON key file, mode 0600: `{"versions": [{"version", "key", "created_at", ...}]}`.

    `create=True` (the local profile's default file) generates version 1 when the file is
    missing; otherwise a missing file is an error. Writers hold an exclusive `flock`.
    """

    def __init__(self, path: Path, *, create: bool) -> None:
        self.path = Path(path)
        self.source = f"key file {self.path}"
        self._meta: dict[int, KekVersion] = {}
        self._keys = {}
        if not self.path.exists():
            if not create:
                raise KeyServiceError(f"encryption.kek_file: {self.path} does not exist")
            with self._locked():
                if not self.path.exists():
                    self._save([_new_entry(1)])
        self.reload()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        private_dir(self.path.parent)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def reload(self) -> None:
        """Re-read the file (another process may have rotated)."""
        try:
            entries = json.loads(self.path.read_text())["versions"]
            keys = {
                int(e["version"]): _decode_key(e["key"], f"{self.source}: v{e['version']}")
                for e in entries
            }
        except KeyServiceError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyServiceError(f"{self.source}: unreadable ({type(exc).__name__})") from None
        if not keys:
            raise KeyServiceError(f"{self.source}: holds no key")
        self._keys = keys
        self._meta = {
            int(e["version"]): KekVersion(
                int(e["version"]), e.get("created_at"), e.get("retired_at")
            )
            for e in entries
        }

    def _key(self, version: int) -> bytes:
        if version not in self._keys:
            self.reload()
        return super()._key(version)

    def _entries(self) -> list[dict[str, object]]:
        versions: list[dict[str, object]] = json.loads(self.path.read_text())["versions"]
        return versions

    def _save(self, entries: list[dict[str, object]]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, FILE_MODE)
        with os.fdopen(fd, "w") as handle:
            json.dump({"versions": entries}, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)

    def create_version(self) -> int | None:
        with self._locked():
            entries = self._entries()
            version = max(int(str(e["version"])) for e in entries) + 1
            self._save([*entries, _new_entry(version)])
        self.reload()
        return version

    def versions(self) -> list[KekVersion]:
        self.reload()
        return [self._meta[v] for v in sorted(self._meta)]

    def retire(self, versions: list[int]) -> None:
        if not versions:
            return
        with self._locked():
            entries = self._entries()
            for entry in entries:
                if int(str(entry["version"])) in versions and not entry.get("retired_at"):
                    entry["retired_at"] = time.time()
            self._save(entries)
        self.reload()


def _new_entry(version: int) -> dict[str, object]:
    key = base64.b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")
    return {"version": version, "key": key, "created_at": time.time(), "retired_at": None}
