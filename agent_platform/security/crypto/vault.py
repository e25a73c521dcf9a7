"""The production key-encryption key: HashiCorp Vault's transit engine (tested against OpenBao).

The KEK never leaves Vault. `wrap` sends the data key to `transit/encrypt/<key>` and stores the
returned `vault:v<N>:...` ciphertext; `unwrap` calls `transit/decrypt/<key>`; a rotation calls
`transit/keys/<key>/rotate`, then re-wraps data keys with `transit/rewrap/<key>` semantics (here:
decrypt + encrypt, so the same code path serves every source). The same four calls map onto AWS
KMS (`Encrypt`, `Decrypt`, a new key version via an alias) or GCP KMS, behind this interface.

URL: `vault-transit://vault.example:8200/<key name>` (https; `vault-transit+http://` for a dev
server), token from `AGENT_PLATFORM_ENCRYPTION_KMS_TOKEN`. `tests/security/test_vault_transit.py`
runs it against a real OpenBao dev server (Vault's open-source fork, same transit API); HashiCorp
Vault itself and AWS/GCP KMS have not run here.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlparse

import httpx

from agent_platform.security.crypto.errors import KeyServiceError
from agent_platform.security.crypto.kek import KekVersion


class VaultTransitKek:
    def __init__(self, url: str, token: str | None, *, timeout_s: float = 5.0) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in {"vault-transit", "vault-transit+http"} or not parsed.path.strip(
            "/"
        ):
            raise KeyServiceError(
                f"encryption.kms_url: expected vault-transit://host:port/<key name>, got {url!r}"
            )
        if not token:
            raise KeyServiceError(
                "encryption: Vault transit needs AGENT_PLATFORM_ENCRYPTION_KMS_TOKEN"
            )
        scheme = "http" if parsed.scheme.endswith("+http") else "https"
        self.key_name = parsed.path.strip("/")
        self.source = f"Vault transit key {self.key_name!r} at {parsed.netloc}"
        self._client = httpx.Client(
            base_url=f"{scheme}://{parsed.netloc}/v1/transit",
            headers={"X-Vault-Token": token},
            timeout=timeout_s,
        )

    def _call(
        self, method: str, path: str, body: dict[str, object] | None = None
    ) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise KeyServiceError(
                f"encryption: {self.source} unreachable ({type(exc).__name__})"
            ) from None
        if response.status_code >= 400:
            raise KeyServiceError(
                f"encryption: {self.source} answered {response.status_code} to {path}"
            )
        return response.json() if response.content else {}

    def current_version(self) -> int:
        return int(self._call("GET", f"/keys/{self.key_name}")["data"]["latest_version"])

    def wrap(self, data_key: bytes, context: bytes) -> tuple[int, bytes]:
        data = self._call(
            "POST",
            f"/encrypt/{self.key_name}",
            {
                "plaintext": base64.b64encode(data_key).decode(),
                "associated_data": base64.b64encode(context).decode(),
            },
        )["data"]
        ciphertext = str(data["ciphertext"])  # vault:v<N>:...
        return int(ciphertext.split(":")[1].removeprefix("v")), ciphertext.encode()

    def unwrap(self, version: int, wrapped: bytes, context: bytes) -> bytes:
        data = self._call(
            "POST",
            f"/decrypt/{self.key_name}",
            {"ciphertext": wrapped.decode(), "associated_data": base64.b64encode(context).decode()},
        )["data"]
        return base64.b64decode(data["plaintext"])

    def create_version(self) -> int | None:
        self._call("POST", f"/keys/{self.key_name}/rotate")
        return self.current_version()

    def versions(self) -> list[KekVersion]:
        data = self._call("GET", f"/keys/{self.key_name}")["data"]
        minimum = int(data.get("min_decryption_version", 1))
        return [
            KekVersion(int(v), None, None if int(v) >= minimum else 0.0)
            for v in sorted(data.get("keys", {}), key=int)
        ]

    def retire(self, versions: list[int]) -> None:
        """Vault keeps old versions; raising `min_decryption_version` is an operator decision."""
        return None
