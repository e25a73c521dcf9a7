"""One tenant of the embedded store on disk, and its in-memory state.

Layout: `<root>/<tenant>/CURRENT` names the live data directory `data-<id>/`, which holds
`records.sqlite`, `ann-<seq>.bin` and `manifest.json` (the ANN file's checksum, live count and the
write `seq` it reflects). Swapping a whole data directory (restore) is one os.replace of CURRENT;
swapping an ANN file (save, rebuild) is one os.replace of manifest.json. Anything that does not
match its manifest is reported as corruption, before hnswlib ever reads it.

Another process may swap files at any time (a Dagster run rebuilding the index the serving runtime
searches): opening retries when CURRENT or the manifest changed under it, and an open tenant
notices a new CURRENT or manifest by a stat check and is reopened by the store. Every write,
save, rebuild and restore holds the tenant's cross-process lock (`tenant_lock`) and first checks
that its state is still the live one, so no process saves an ANN that misses another's deletes.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent_platform.vectorstore.embedded_ann import AnnIndex, AnnParams
from agent_platform.vectorstore.embedded_sqlite import RecordDB
from agent_platform.vectorstore.snapshots import (
    file_digest,
    json_text,
    stage_text,
    utc_now,
    write_json_atomic,
)

CURRENT, MANIFEST, RECORDS, LOCK = "CURRENT", "manifest.json", "records.sqlite", "LOCK"
FORMAT = 1
OPEN_ATTEMPTS = 5  # a swap by another process mid-open costs one retry; five means real damage

StatKey = tuple[int, int, int, int] | None


class TenantDamaged(Exception):  # noqa: N818 - internal signal, turned into IndexCorruptedError
    """Raised while opening; `ann_only` means the records database is fine (rebuild repairs)."""

    def __init__(self, problem: str, ann_only: bool = False) -> None:
        super().__init__(problem)
        self.ann_only = ann_only


class RWLock:
    """Many readers or one writer; waiting writers block new readers (no writer starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def new_data_dir(tenant_dir: Path) -> Path:
    path = tenant_dir / f"data-{utc_now().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    return path


def point_current(tenant_dir: Path, data_dir: Path) -> None:
    """Atomically make `data_dir` the tenant's live data (os.replace of the CURRENT file)."""
    stage_text(tenant_dir / CURRENT, data_dir.name).replace(tenant_dir / CURRENT)


@contextmanager
def tenant_lock(tenant_dir: Path) -> Iterator[None]:
    """Exclusive lock on the tenant across processes (fcntl.flock on `<tenant>/LOCK`).

    Not reentrant: flock on a second descriptor blocks even in the same thread.
    """
    path = tenant_dir / LOCK
    while True:
        tenant_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            key = stat_key(path)
            if key is not None and key[0] == os.fstat(fd).st_ino:
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the tenant was dropped meanwhile: lock the file that is there now
    try:
        yield
    finally:
        os.close(fd)  # releases the flock


def stat_key(path: Path) -> StatKey:
    """Identity of one version of a file: os.replace gives each version a new inode and times."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _live_pointers(tenant_dir: Path) -> tuple[bytes | None, bytes | None]:
    """The bytes of CURRENT and of the manifest it names: together they decide the live files."""
    try:
        current = (tenant_dir / CURRENT).read_bytes()
        return current, (tenant_dir / current.decode("utf-8").strip() / MANIFEST).read_bytes()
    except (OSError, UnicodeDecodeError):
        return None, None


def empty_manifest(params: AnnParams) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "dim": None,
        "ann_file": None,
        "ann_sha256": None,
        "ann_bytes": None,
        "ann_live": 0,
        "synced_seq": 0,
        "params": params.as_dict(),
        "updated_at": utc_now().isoformat(),
    }


class TenantState:
    """Open SQLite + loaded ANN for one version of a tenant on disk.

    Each query or write holds a reference (`acquire`/`release`). The store `retire`s a state once
    the disk moved on; the last user closes it, so nobody waits for in-flight queries. Mutations
    hold `write_lock` and `tenant_lock`.
    """

    def __init__(self, name: str, tenant_dir: Path, params: AnnParams, load_ann: bool) -> None:
        self.name, self.tenant_dir, self.params = name, tenant_dir, params
        self.write_lock = threading.RLock()
        self.rw = RWLock()
        self.unsaved = 0
        self.retired = self.closed = False
        self._users = 0
        self._users_lock = threading.Lock()
        self._disk_lock = threading.Lock()  # held only for our own manifest swap + stat
        current = tenant_dir / CURRENT
        current_key = stat_key(current)  # each key is taken before its file is read
        if not current.is_file():
            raise TenantDamaged(f"{current} is missing")
        self.data_dir = tenant_dir / current.read_text(encoding="utf-8").strip()
        manifest_key = stat_key(self.data_dir / MANIFEST)
        self.manifest = self.read_manifest()
        self.disk_key = (current_key, manifest_key)
        db_path = self.data_dir / RECORDS
        if not db_path.is_file():
            raise TenantDamaged(f"records database {db_path} is missing")
        self.db = RecordDB(db_path)
        self.ann: AnnIndex | None = None
        self.ann_seq = 0
        if load_ann:
            try:
                self._load_ann()
            except BaseException:
                self.db.close()
                raise

    @classmethod
    def open(cls, name: str, tenant_dir: Path, params: AnnParams, load_ann: bool) -> TenantState:
        """Open the live files, retrying when another process swapped them while we read them.

        A writer replaces the manifest and then deletes the ANN file it named, so a reader that
        read the old manifest can find that file gone (or half-way through being deleted). That is
        not damage when CURRENT or the manifest changed meanwhile: read them again.
        """
        attempt = 0
        while True:
            before = _live_pointers(tenant_dir)
            try:
                return cls(name, tenant_dir, params, load_ann)
            except (TenantDamaged, sqlite3.DatabaseError):
                attempt += 1
                if attempt >= OPEN_ATTEMPTS or _live_pointers(tenant_dir) == before:
                    raise

    def _disk_now(self) -> tuple[StatKey, StatKey]:
        return stat_key(self.tenant_dir / CURRENT), stat_key(self.data_dir / MANIFEST)

    def changed_on_disk(self) -> bool:
        """True once another process replaced CURRENT or the manifest (two stat calls)."""
        if self._disk_now() == self.disk_key:
            return False
        with self._disk_lock:  # our own save may be between its os.replace and its key update
            return self._disk_now() != self.disk_key

    # --- users -------------------------------------------------------------------------------
    def acquire(self) -> bool:
        """Take a reference; False once retired (the caller opens the live version instead)."""
        with self._users_lock:
            if self.retired:
                return False
            self._users += 1
            return True

    def release(self) -> None:
        with self._users_lock:
            self._users -= 1
            close = self._close_due()
        if close:
            self.db.close()

    def retire(self) -> None:
        """No new users; closed now if idle, else by the last `release`."""
        with self._users_lock:
            self.retired = True
            close = self._close_due()
        if close:
            self.db.close()

    def _close_due(self) -> bool:  # caller holds _users_lock
        if self.retired and self._users == 0 and not self.closed:
            self.closed = True
            return True
        return False

    @classmethod
    def create(cls, name: str, tenant_dir: Path, params: AnnParams) -> TenantState:
        data_dir = new_data_dir(tenant_dir)
        RecordDB(data_dir / RECORDS).close()
        write_json_atomic(data_dir / MANIFEST, empty_manifest(params))
        point_current(tenant_dir, data_dir)
        return cls(name, tenant_dir, params, load_ann=True)

    def read_manifest(self) -> dict[str, Any]:
        path = self.data_dir / MANIFEST
        try:
            manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TenantDamaged(f"index manifest {path} is unreadable ({exc})") from exc
        if manifest.get("format") != FORMAT:
            raise TenantDamaged(
                f"index manifest {path} has unknown format {manifest.get('format')}"
            )
        return manifest

    def ann_file_problems(self, manifest: dict[str, Any]) -> list[str]:
        """Missing / truncated / modified ANN file, checked against the manifest."""
        if not manifest.get("ann_file"):
            return []
        path = self.data_dir / manifest["ann_file"]
        if not path.is_file():
            return [f"ANN index file {path} is missing"]
        try:
            size = path.stat().st_size
            if size != manifest["ann_bytes"]:
                return [
                    f"ANN index file {path} has {size} bytes, manifest says {manifest['ann_bytes']}"
                ]
            if file_digest(path) != manifest["ann_sha256"]:
                return [f"ANN index file {path} does not match its checksum in the manifest"]
        except OSError as exc:  # deleted or unreadable while we checked it
            return [f"ANN index file {path} is unreadable ({exc})"]
        return []

    def _load_ann(self) -> None:
        m = self.manifest
        problems = self.ann_file_problems(m)
        if problems:
            raise TenantDamaged("; ".join(problems), ann_only=True)
        dim = self.db.dim()
        if m.get("ann_file"):
            if dim != m["dim"]:
                raise TenantDamaged(f"records hold {dim}-d vectors but the ANN index {m['dim']}-d")
            path = self.data_dir / m["ann_file"]
            try:
                self.ann = AnnIndex.load(path, m["dim"], self.params, live=int(m["ann_live"]))
            except RuntimeError as exc:  # hnswlib: the file vanished after the checksum
                raise TenantDamaged(f"ANN index file {path}: {exc}", ann_only=True) from exc
        self.ann_seq = int(m["synced_seq"])
        with self.db.snapshot():  # the count must be of the version that was replayed
            self.sync()
            count = self.db.count()
        live = self.ann.live if self.ann else 0
        if live != count:
            raise TenantDamaged(
                f"ANN index holds {live} vectors but the records database {count}", ann_only=True
            )

    def sync(self) -> None:
        """Replay writes newer than the ANN (`seq > ann_seq`) into it, a batch at a time.

        The caller holds `write_lock`. Tombstones are purged only by a save, which replaces the
        manifest: a state that may have missed some is stale and never saved (see the store).
        """
        with self.db.snapshot():  # seq, tombstones and rows of one committed version
            seq = self.db.seq()
            if seq == self.ann_seq:
                return
            dead, batches = self.db.changes_since(self.ann_seq)
            dim = self.db.dim()
            if self.ann is None:
                if dim is None:
                    self.ann_seq = seq
                    return
                self.ann = AnnIndex(dim, self.params, capacity=max(1024, self.db.count()))
            with self.rw.write():
                self.unsaved += self.ann.remove(dead)
            for labels, vectors in batches:
                with self.rw.write():
                    self.ann.add(labels, vectors)
                self.unsaved += len(labels)
            self.ann_seq = seq

    def catch_up(self) -> None:
        """For readers: replay rows another process committed but did not save (never waits).

        When a writer of this process holds `write_lock`, it syncs itself after its commit.
        """
        if self.db.seq() == self.ann_seq or not self.write_lock.acquire(blocking=False):
            return
        try:
            self.sync()
        finally:
            self.write_lock.release()

    def save(self, ann: AnnIndex | None = None) -> None:
        """Persist `ann` (default: the live one) as the new ANN file; manifest swap commits it.

        The caller holds `write_lock` and `tenant_lock` and has checked `changed_on_disk`.
        """
        ann = ann or self.ann
        if ann is None:
            return
        old = self.manifest.get("ann_file")
        name = f"ann-{self.ann_seq:012d}-{uuid.uuid4().hex[:6]}.bin"
        with self.rw.read():
            sha, size = ann.save(self.data_dir / name)
        manifest = {
            **empty_manifest(self.params),
            "dim": ann.dim,
            "ann_file": name,
            "ann_sha256": sha,
            "ann_bytes": size,
            "ann_live": ann.live,
            "synced_seq": self.ann_seq,
        }
        path = self.data_dir / MANIFEST
        staged = stage_text(path, json_text(manifest))  # write + fsync outside the lock
        with self._disk_lock:  # our own swap must not look like another process's
            staged.replace(path)
            self.disk_key = (self.disk_key[0], stat_key(path))
        self.manifest = manifest
        self.db.purge_tombstones(self.ann_seq)
        self.unsaved = 0
        if old and old != name:
            (self.data_dir / old).unlink(missing_ok=True)

    def maybe_save(self) -> None:
        """Save when enough changed; compact instead when tombstones outnumber live vectors."""
        if self.ann is None or self.unsaved < max(2000, self.ann.live // 4):
            return
        if self.ann.tombstones > max(1000, self.ann.live):
            self.rebuild()
        else:
            self.save()

    def rebuild(self) -> int:
        """New ANN from stored vectors + FTS rebuild; readers keep the old one until the swap."""
        self.db.rebuild_fts()
        dim = self.db.dim()
        count = self.db.count()
        if dim is None:
            return 0
        fresh = AnnIndex(dim, self.params, capacity=max(1024, count))
        for labels, vectors in self.db.vector_batches():
            fresh.add(labels, vectors)
        self.ann_seq = self.db.seq()
        self.save(fresh)
        with self.rw.write():
            self.ann = fresh
        return count
