"""The encryption key ring as a resource: the rotation asset calls the library through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from agent_platform.security.crypto import (
    KeyStatus,
    RotationReport,
    ValueCipher,
    key_status,
    rotate_keys,
    value_cipher,
)
from agent_platform.settings import Settings


class KeyRingResource(dg.ConfigurableResource):
    """Keys of the platform under `home`; key sources and secrets come from the environment."""

    home: str

    def settings(self) -> Settings:
        return Settings(home=Path(self.home))

    def rotate(self, *, force: bool, actor: dict[str, Any]) -> RotationReport:
        return rotate_keys(self.settings(), actor=actor, force=force)

    def status(self) -> KeyStatus:
        return key_status(self.settings())

    def cipher(self) -> ValueCipher:
        """The cipher snapshots are sealed with (plaintext when encryption is off)."""
        return value_cipher(self.settings())
