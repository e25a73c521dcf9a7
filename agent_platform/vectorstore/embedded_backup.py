"""Snapshots of an embedded tenant: backup (online, consistent) and verified, atomic restore.

A snapshot is built in a hidden `.<id>.tmp` directory and renamed into place, so a crash never
leaves a half snapshot that lists as valid. With encryption on, the records are copied next to
the live data first, their text sealed and keyword index emptied there, and only the VACUUMed
result enters the snapshot (see `snapshot_seal`). Restore checks every checksum (authenticated
when sealed) and SQLite's integrity before touching the live tenant, stages a full copy in a new
data directory, decrypts it there, and then switches with one os.replace of the tenant's CURRENT
file.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_platform.security.crypto import PLAINTEXT, EncryptionError, ValueCipher
from agent_platform.vectorstore import snapshot_seal as seal
from agent_platform.vectorstore import snapshots as snap
from agent_platform.vectorstore.base import IndexCorruptedError, SnapshotInfo
from agent_platform.vectorstore.embedded_sqlite import connect
from agent_platform.vectorstore.embedded_tenant import (
    CURRENT,
    MANIFEST,
    RECORDS,
    TenantState,
    new_data_dir,
    point_current,
    tenant_lock,
)

if TYPE_CHECKING:
    from agent_platform.vectorstore.embedded import EmbeddedVectorStore


def _copy_records(state: TenantState, dest: Path, snapshot_id: str, cipher: ValueCipher) -> None:
    """The tenant's records into `dest`, text sealed and keyword index left out when `cipher` is
    on. The plaintext working copy stays next to the live data, never in the snapshot folder."""
    if not cipher.enabled:
        state.db.backup_to(dest)
        return
    work = state.tenant_dir / f".{snapshot_id}.snapshot.sqlite"
    try:
        state.db.backup_to(work)
        seal.seal_records(work, state.name, snapshot_id, cipher)
        conn = sqlite3.connect(work)
        try:
            conn.execute("VACUUM INTO ?", (str(dest),))  # a fresh file: no freed plaintext pages
        finally:
            conn.close()
    finally:
        for leftover in (
            work,
            work.with_name(f"{work.name}-wal"),
            work.with_name(f"{work.name}-shm"),
        ):
            leftover.unlink(missing_ok=True)


def backup(
    state: TenantState, snapshots_dir: Path, cipher: ValueCipher = PLAINTEXT
) -> SnapshotInfo:
    """Copy the tenant (caller holds its write lock and has flushed the ANN) into a snapshot."""
    now = snap.utc_now()
    target = snap.new_snapshot_dir(snapshots_dir, state.name, now)
    tmp = target.parent / f".{target.name}.tmp"
    tmp.mkdir(parents=True)
    try:
        _copy_records(state, tmp / RECORDS, target.name, cipher)
        files = {RECORDS: snap.file_entry(tmp / RECORDS)}
        ann_file = state.manifest.get("ann_file")
        if ann_file:
            shutil.copy2(state.data_dir / ann_file, tmp / ann_file)
            files[ann_file] = snap.file_entry(tmp / ann_file)
            if files[ann_file]["sha256"] != state.manifest["ann_sha256"]:
                raise IndexCorruptedError(
                    f"tenant {state.name!r}: the live ANN file no longer matches its manifest; "
                    f"not snapshotting a damaged index (run `agent-platform index rebuild "
                    f"--tenant {state.name}` first)",
                    repair="rebuild",
                )
        manifest = {
            "format": 1,
            "backend": "embedded",
            "snapshot_id": target.name,
            "tenant": state.name,
            "created_at": now.isoformat(),
            "chunk_count": state.db.count(),
            "files": files,
            "index_manifest": state.manifest,
            **seal.encryption_entry(cipher, state.name, target.name, files),
        }
        snap.write_json_atomic(tmp / snap.MANIFEST, manifest)
        tmp.replace(target)  # atomic rename
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return snap.info_from(target, manifest)


def snapshot_problems(
    sdir: Path, manifest: dict[str, Any], tenant: str, cipher: ValueCipher = PLAINTEXT
) -> list[str]:
    problems = snap.check_files(sdir, manifest) + seal.seal_problems(cipher, manifest, tenant)
    if manifest.get("tenant") != tenant:
        problems.append(f"it belongs to tenant {manifest.get('tenant')!r}")
    if manifest.get("backend") != "embedded" or RECORDS not in manifest.get("files", {}):
        problems.append("it is not an embedded-store snapshot")
    if problems:
        return problems
    try:
        conn = connect(sdir / RECORDS, readonly=True)
        try:
            problems += [r[0] for r in conn.execute("PRAGMA quick_check") if r[0] != "ok"]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        problems.append(f"{RECORDS}: {exc}")
    return problems


def _refused(snapshot_id: str, tenant: str, problems: list[str]) -> snap.SnapshotCorruptedError:
    return snap.SnapshotCorruptedError(
        f"snapshot {snapshot_id!r} of tenant {tenant!r} failed verification "
        f"({'; '.join(problems)}); it was not restored and the live index is unchanged"
    )


def restore(
    store: EmbeddedVectorStore,
    tenant: str,
    snapshots_dir: Path,
    snapshot_id: str,
    cipher: ValueCipher = PLAINTEXT,
) -> SnapshotInfo:
    sdir = snap.snapshot_dir(snapshots_dir, tenant, snapshot_id)
    manifest = snap.read_manifest(sdir)
    problems = snapshot_problems(sdir, manifest, tenant, cipher)
    if problems:
        raise _refused(snapshot_id, tenant, problems)
    tenant_dir = store.root / tenant
    tenant_dir.mkdir(parents=True, exist_ok=True)
    staged = new_data_dir(tenant_dir)
    try:
        for name in manifest["files"]:
            shutil.copy2(sdir / name, staged / name)
        seal.open_records(staged / RECORDS, tenant, str(manifest["snapshot_id"]), cipher)
        snap.write_json_atomic(staged / MANIFEST, manifest["index_manifest"])
    except EncryptionError as exc:
        shutil.rmtree(staged, ignore_errors=True)
        raise _refused(snapshot_id, tenant, [str(exc)]) from None
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    current = tenant_dir / CURRENT
    # No writer of any process works on the old data during the swap, and no reader of this one
    # reopens it between eviction and the swap (others notice the new CURRENT by its stat).
    with tenant_lock(tenant_dir), store._open_lock(tenant):
        old = current.read_text(encoding="utf-8").strip() if current.is_file() else None
        store._evict(tenant)
        point_current(tenant_dir, staged)
    if old and old != staged.name:
        shutil.rmtree(tenant_dir / old, ignore_errors=True)
    return snap.info_from(sdir, manifest)
