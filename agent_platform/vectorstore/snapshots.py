"""Snapshot directories shared by both backends: `snapshots_dir/<tenant>/<snapshot_id>/`.

Each snapshot has a `manifest.json` (id, tenant, created_at, chunk_count, per-file SHA-256 and
size, backend details). Listing, the "latest snapshot" used in corruption messages and retention
pruning only read manifests, so they work the same for the embedded files and for a Weaviate
backup id recorded in the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent_platform.vectorstore.base import SnapshotInfo, SnapshotNotFoundError, VectorStoreError

MANIFEST = "manifest.json"


def file_digest(path: Path) -> str:
    """SHA-256 of a file, streamed (index files can be hundreds of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(4 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


class SnapshotCorruptedError(VectorStoreError):
    """A snapshot failed its checksum or integrity check; it was not restored."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_snapshot_dir(snapshots_dir: Path, tenant: str, now: datetime | None = None) -> Path:
    """A fresh `<UTC timestamp>[-NN]` directory path (not created) for the tenant."""
    stamp = (now or utc_now()).strftime("%Y%m%dT%H%M%SZ")
    base = snapshots_dir / tenant
    candidate, n = base / stamp, 0
    while candidate.exists() or (base / f".{candidate.name}.tmp").exists():
        n += 1
        candidate = base / f"{stamp}-{n:02d}"
    return candidate


def stage_text(path: Path, text: str) -> Path:
    """Write `text` to a fresh, fsynced temporary file next to `path`; the caller os.replaces it.

    The name is unique (two processes saving at once never write into each other's file), and
    the slow part (write + fsync) happens before the caller takes any lock for the swap.
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def json_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, indent=2, sort_keys=True)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON via a temporary file, fsync and os.replace: readers see old or new, never half."""
    stage_text(path, json_text(payload)).replace(path)  # os.replace: atomic


def read_manifest(snapshot_dir: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((snapshot_dir / MANIFEST).read_text(encoding="utf-8"))
        return manifest
    except (OSError, ValueError) as exc:
        raise SnapshotCorruptedError(
            f"snapshot {snapshot_dir}: unreadable {MANIFEST}: {exc}"
        ) from exc


def file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": file_digest(path), "bytes": path.stat().st_size}


def check_files(snapshot_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """Problems with the files the manifest lists (missing, wrong size, wrong checksum)."""
    problems = []
    for name, entry in manifest.get("files", {}).items():
        path = snapshot_dir / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != entry["bytes"]:
            problems.append(f"{name} has {path.stat().st_size} bytes, expected {entry['bytes']}")
        elif file_digest(path) != entry["sha256"]:
            problems.append(f"{name} checksum does not match the manifest")
    return problems


def info_from(snapshot_dir: Path, manifest: dict[str, Any]) -> SnapshotInfo:
    return SnapshotInfo(
        snapshot_id=manifest["snapshot_id"],
        tenant=manifest["tenant"],
        created_at=manifest["created_at"],
        chunk_count=int(manifest["chunk_count"]),
        location=str(snapshot_dir),
    )


def list_snapshots(snapshots_dir: Path, tenant: str) -> list[SnapshotInfo]:
    """Snapshots oldest first; directories without a readable manifest are not snapshots."""
    base = snapshots_dir / tenant
    if not base.is_dir():
        return []
    infos = []
    for child in base.iterdir():
        if child.name.startswith(".") or not (child / MANIFEST).is_file():
            continue
        try:
            infos.append(info_from(child, read_manifest(child)))
        except (SnapshotCorruptedError, KeyError, ValueError, TypeError):
            continue
    return sorted(infos, key=lambda i: (i.created_at, i.snapshot_id))


def latest_snapshot_id(snapshots_dir: Path | None, tenant: str) -> str | None:
    if snapshots_dir is None:
        return None
    snaps = list_snapshots(snapshots_dir, tenant)
    return snaps[-1].snapshot_id if snaps else None


def snapshot_dir(snapshots_dir: Path, tenant: str, snapshot_id: str) -> Path:
    path = snapshots_dir / tenant / snapshot_id
    if "/" in snapshot_id or snapshot_id.startswith(".") or not (path / MANIFEST).is_file():
        known = [s.snapshot_id for s in list_snapshots(snapshots_dir, tenant)]
        raise SnapshotNotFoundError(
            f"tenant {tenant!r} has no snapshot {snapshot_id!r} in {snapshots_dir}; "
            f"available: {', '.join(known) if known else 'none'}"
        )
    return path


def prune(
    snapshots_dir: Path, tenant: str, retention_days: int, now: datetime | None = None
) -> list[str]:
    """Delete snapshots older than `retention_days`, always keeping the newest one.

    Keeping the newest means a tenant that stopped changing still has something to restore.
    """
    if (
        isinstance(retention_days, bool)
        or not isinstance(retention_days, int)
        or retention_days < 0
    ):
        raise ValueError(f"retention_days must be a non-negative integer, got {retention_days!r}")
    cutoff = (now or utc_now()) - timedelta(days=retention_days)
    snaps = list_snapshots(snapshots_dir, tenant)
    removed = []
    for info in snaps[:-1]:
        if datetime.fromisoformat(info.created_at) < cutoff:
            shutil.rmtree(info.location)
            removed.append(info.snapshot_id)
    return removed


def restore_hint(tenant: str, snapshot_id: str | None) -> str:
    """The commands that bring back a tenant whose stored records are damaged.

    Re-ingesting always works (the index is derived from the tenant's source documents, and the
    embedding cache makes it cheap); a snapshot is the alternative where one exists.
    """
    ingest = f"agent-platform ingest <source-dir> --tenant {tenant}"
    if snapshot_id:
        return (
            f"{ingest} (rebuilds it from its source documents), or restore the newest snapshot: "
            f"agent-platform index restore --tenant {tenant} --snapshot {snapshot_id}"
        )
    return f"{ingest} (rebuilds it from its source documents; no snapshot exists to restore)"
