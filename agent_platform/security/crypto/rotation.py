"""Key rotation: a new key-encryption key version, a new data key per tenant, re-wrapping.

`rotate_keys` (the `key_rotation` schedule and `agent-platform keys rotate`):

1. adds a KEK version (a key file or Vault can; the environment cannot: the operator adds the next
   version to `AGENT_PLATFORM_ENCRYPTION_KEK` and rotates, which re-wraps under the newest);
2. gives every tenant a new data key, so new writes use fresh keys (older versions keep
   decrypting what they sealed; nothing is re-encrypted, so nothing is rewritten under traffic);
3. re-wraps every data key under the newest KEK in batches of `rotation_batch_size`, each row
   updated only if nobody changed it meanwhile;
4. marks KEK versions that no data key uses any more as retired (kept, so a database backup from
   before the rotation can still be restored).

Every rotation, successful or not, is written to the audit log (`keys.rotate`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from agent_platform.security.crypto.errors import EncryptionError
from agent_platform.security.crypto.factory import open_key_ring
from agent_platform.security.crypto.keyring import KeyRing, wrap_context

DAY_S = 86_400.0


@dataclass(frozen=True)
class KeyStatus:
    source: str
    kek_version: int
    kek_versions: list[dict[str, Any]]
    data_keys: int
    data_keys_by_kek_version: dict[int, int]
    tenants: int
    last_rotation_at: float | None
    rotation_days: int
    due: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RotationReport:
    rotated: bool
    kek_version: int
    previous_kek_version: int
    new_data_keys: int
    rewrapped: int
    batches: int
    retired_kek_versions: list[int] = field(default_factory=list)
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _last_rotation(ring: KeyRing) -> float | None:
    current = ring.kek.current_version()
    created = [v.created_at for v in ring.kek.versions() if v.version == current and v.created_at]
    if created:
        return float(created[0])
    latest = [k.created_at for t in ring.store.tenants() if (k := ring.store.latest(t))]
    return max(latest) if latest else None


def key_status(settings: Any) -> KeyStatus:
    ring = open_key_ring(settings)
    last = _last_rotation(ring)
    days = settings.encryption.rotation_days
    by_version = ring.store.count_by_kek_version()
    return KeyStatus(
        source=ring.kek.source,
        kek_version=ring.kek.current_version(),
        kek_versions=[
            {**asdict(v), "data_keys": by_version.get(v.version, 0)} for v in ring.kek.versions()
        ],
        data_keys=sum(by_version.values()),
        data_keys_by_kek_version=by_version,
        tenants=len(ring.store.tenants()),
        last_rotation_at=last,
        rotation_days=days,
        due=last is None or time.time() - last >= days * DAY_S,
    )


def rewrap_all(ring: KeyRing, batch_size: int) -> tuple[int, int]:
    """Re-wrap every data key under the newest KEK version; returns (re-wrapped, batches)."""
    target = ring.kek.current_version()
    rewrapped = batches = 0
    for _ in range(1_000_000):
        batch = ring.store.wrapped_by_other_than(target, batch_size)
        if not batch:
            break
        batches += 1
        for old in batch:
            context = wrap_context(old.tenant, old.version)
            data_key = ring.kek.unwrap(old.kek_version, old.wrapped, context)
            version, wrapped = ring.kek.wrap(data_key, context)
            rewrapped += ring.store.rewrap(old, version, wrapped)
    return rewrapped, batches


def rotate_keys(
    settings: Any, *, actor: dict[str, Any], force: bool = False, batch_size: int | None = None
) -> RotationReport:
    """Rotate when due (or `force`), audited; EncryptionError (after auditing it) on failure."""
    from agent_platform.audit import open_audit_log

    ring = open_key_ring(settings)
    previous = ring.kek.current_version()
    if not force and not key_status(settings).due:
        return RotationReport(False, previous, previous, 0, 0, 0, reason="not due")
    audit = open_audit_log(settings)
    try:
        try:
            created = ring.kek.create_version()
            new_keys = sum(1 for tenant in ring.store.tenants() if ring.add_version(tenant))
            rewrapped, batches = rewrap_all(
                ring, batch_size or settings.encryption.rotation_batch_size
            )
            in_use = ring.store.count_by_kek_version()
            current = ring.kek.current_version()
            unused = [
                v.version
                for v in ring.kek.versions()
                if v.version != current and not in_use.get(v.version) and v.retired_at is None
            ]
            ring.kek.retire(unused)
        except EncryptionError as exc:
            audit.record(
                "keys.rotate", actor=actor, action="rotate", outcome="failure", error=str(exc)
            )
            raise
        report = RotationReport(
            True,
            current,
            previous,
            new_keys,
            rewrapped,
            batches,
            unused,
            reason="new key version" if created else "re-wrapped under the newest version",
        )
        audit.record(
            "keys.rotate",
            actor=actor,
            action="rotate",
            outcome="success",
            source=ring.kek.source,
            **{k: v for k, v in report.as_dict().items() if k != "rotated"},
        )
        return report
    finally:
        audit.close()
