"""Snapshots of an embedded tenant: backup (online, consistent) and verified, atomic restore.

A snapshot is built in a hidden `.<id>.tmp` directory and renamed into place, so a crash never
leaves a half snapshot that lists as valid. Restore checks every checksum and SQLite's integrity
before touching the live tenant, stages a full copy in a new data directory, and then switches
with one os.replace of the tenant's CURRENT file.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

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


def backup(state: TenantState, snapshots_dir: Path) -> SnapshotInfo:
    """Copy the tenant (caller holds its write lock and has flushed the ANN) into a snapshot."""
    now = snap.utc_now()
    target = snap.new_snapshot_dir(snapshots_dir, state.name, now)
    tmp = target.parent / f".{target.name}.tmp"
    tmp.mkdir(parents=True)
    try:
        state.db.backup_to(tmp / RECORDS)
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
        }
        snap.write_json_atomic(tmp / snap.MANIFEST, manifest)
        tmp.replace(target)  # atomic rename
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return snap.info_from(target, manifest)


def snapshot_problems(sdir: Path, manifest: dict, tenant: str) -> list[str]:
    problems = snap.check_files(sdir, manifest)
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


def restore(
    store: EmbeddedVectorStore, tenant: str, snapshots_dir: Path, snapshot_id: str
) -> SnapshotInfo:
    sdir = snap.snapshot_dir(snapshots_dir, tenant, snapshot_id)
    manifest = snap.read_manifest(sdir)
    problems = snapshot_problems(sdir, manifest, tenant)
    if problems:
        raise snap.SnapshotCorruptedError(
            f"snapshot {snapshot_id!r} of tenant {tenant!r} failed verification "
            f"({'; '.join(problems)}); it was not restored and the live index is unchanged"
        )
    tenant_dir = store.root / tenant
    tenant_dir.mkdir(parents=True, exist_ok=True)
    staged = new_data_dir(tenant_dir)
    try:
        for name in manifest["files"]:
            shutil.copy2(sdir / name, staged / name)
        snap.write_json_atomic(staged / MANIFEST, manifest["index_manifest"])
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
