"""The embedded vector store: SQLite records + FTS5 + one hnswlib file per tenant, no server.

Why this shape: see "Embedded vector store: choice" in BENCHMARKS.md. SQLite is the source of
truth (vectors are float32 blobs); the HNSW file is derived data that `rebuild` regenerates.
Concurrency: any number of reader threads, one writer per tenant across threads and processes
(`tenant_lock`). Readers hold the tenant's read lock for a whole query; writers block readers
only while they mutate the ANN, one batch at a time. The hot path takes no store-wide lock: two
stat calls tell whether another process swapped the tenant, and a `seq` read whether it wrote rows
the ANN lacks.

Scores: vector = (1 + cosine) / 2; keyword = query coverage; hybrid = RRF (k=60) normalised
by its maximum. See `validation.py` and `fusion.py`.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import numpy as np

from agent_platform.security.crypto.cipher import PLAINTEXT, ValueCipher
from agent_platform.vectorstore import embedded_search as es
from agent_platform.vectorstore import snapshots as snap
from agent_platform.vectorstore.base import (
    ChunkRecord,
    IndexCorruptedError,
    MetadataValue,
    SearchHit,
    SearchMode,
    SnapshotInfo,
    VectorStoreError,
)
from agent_platform.vectorstore.embedded_ann import AnnParams
from agent_platform.vectorstore.embedded_tenant import (
    CURRENT,
    LOCK,
    TenantDamaged,
    TenantState,
    tenant_lock,
)
from agent_platform.vectorstore.validation import (
    check_filters,
    check_metadata,
    check_record,
    check_search_args,
    check_tenant,
    check_vector,
    vector_score,
)

WRITE_BATCH = 1000
_CORRUPT_MARKERS = ("malformed", "not a database", "no such table", "disk i/o", "corrupt")


SPACE_KEY = "embedding_space"  # meta key: the model and backend that made the stored vectors


class EmbeddedVectorStore:
    """`VectorStore` over local files under `root` (one directory per tenant)."""

    backend_name = "embedded"

    def __init__(
        self, root: Path, snapshots_dir: Path | None = None, params: AnnParams | None = None
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # Where restore commands in corruption messages look for the latest snapshot.
        self.snapshots_dir = (
            Path(snapshots_dir) if snapshots_dir else self.root.parent / "snapshots"
        )
        self.params = params or AnnParams()
        self._tenants: dict[str, TenantState] = {}  # fully loaded, live states only
        self._open_locks: dict[str, threading.Lock] = {}

    # --- tenant plumbing ---------------------------------------------------------------------
    def _corrupted(self, tenant: str, problem: str, ann_only: bool = False) -> IndexCorruptedError:
        """The error names the repair that works: the ANN file is derived from the records
        database (`index rebuild` regenerates it); damaged records come back from the sources."""
        if ann_only:
            return IndexCorruptedError(
                f"index of tenant {tenant!r} is corrupted: {problem}. The records database is "
                f"intact; regenerate the ANN index from it with: "
                f"agent-platform index rebuild --tenant {tenant}",
                repair="rebuild",
            )
        hint = snap.restore_hint(tenant, snap.latest_snapshot_id(self.snapshots_dir, tenant))
        return IndexCorruptedError(
            f"index of tenant {tenant!r} is corrupted: {problem}. Repair it with: {hint}",
            repair="reindex",
        )

    @contextmanager
    def _guard(self, tenant: str) -> Iterator[None]:
        """SQLite corruption errors become IndexCorruptedError naming the restore command."""
        try:
            yield
        except TenantDamaged as exc:
            raise self._corrupted(tenant, str(exc), exc.ann_only) from exc
        except sqlite3.DatabaseError as exc:
            text = str(exc).lower()
            if isinstance(exc, sqlite3.OperationalError) and not any(
                m in text for m in _CORRUPT_MARKERS
            ):
                raise
            raise self._corrupted(tenant, f"records database error: {exc}") from exc

    def _open_lock(self, tenant: str) -> threading.Lock:
        """Serialises opening one tenant (an open loads its ANN: other tenants must not wait)."""
        return self._open_locks.setdefault(tenant, threading.Lock())

    def _acquire(self, tenant: str, create: bool, load_ann: bool = True) -> TenantState | None:
        """The live state of the tenant with a reference taken (the caller releases it).

        Reopened when another process swapped its index (rebuild, restore); the stale state is
        retired and closed by its last user.
        """
        check_tenant(tenant)
        state = self._tenants.get(tenant)
        if state is not None and not state.changed_on_disk() and state.acquire():
            return state
        with self._open_lock(tenant):
            state = self._tenants.get(tenant)
            if state is not None:
                if not state.changed_on_disk() and state.acquire():
                    return state  # another thread reopened it meanwhile
                self._evict(tenant)
            tenant_dir = self.root / tenant
            with self._guard(tenant):
                if (tenant_dir / CURRENT).is_file() or (
                    tenant_dir.is_dir() and any(p.name != LOCK for p in tenant_dir.iterdir())
                ):
                    state = TenantState.open(tenant, tenant_dir, self.params, load_ann)
                elif create:
                    state = TenantState.create(tenant, tenant_dir, self.params)
                else:
                    return None
            state.acquire()
            if state.ann is not None or state.db.dim() is None:
                self._tenants[tenant] = state  # only cache fully loaded tenants
            else:
                state.retire()  # a rebuild's partial open: closed when the caller releases it
            return state

    def _exists(self, tenant: str) -> bool:
        state = self._acquire(tenant, create=False)
        if state is not None:
            state.release()
        return state is not None

    @contextmanager
    def _reading(self, tenant: str) -> Iterator[TenantState | None]:
        state = self._acquire(tenant, create=False)
        if state is None:
            yield None
            return
        try:
            with self._guard(tenant):
                state.catch_up()
                with state.rw.read():
                    yield state
        finally:
            state.release()

    @contextmanager
    def _writing(self, tenant: str, load_ann: bool = True) -> Iterator[TenantState]:
        """Write lock + cross-process lock on a state checked, under both, to be the live one."""
        while True:
            state = self._acquire(tenant, create=True, load_ann=load_ann)
            assert state is not None  # nosec B101  # narrows a type for mypy; the invariant holds by construction
            try:
                with state.write_lock, tenant_lock(state.tenant_dir):
                    if state.changed_on_disk():
                        continue  # another process saved or swapped meanwhile: reopen
                    with self._guard(tenant):
                        if load_ann:
                            state.sync()  # rows another process committed without saving
                        yield state
                    return
            finally:
                state.release()

    def _evict(self, tenant: str) -> None:
        """Stop serving the tenant's cached state; its last user closes it."""
        state = self._tenants.pop(tenant, None)
        if state is not None:
            state.retire()

    # --- writes ------------------------------------------------------------------------------
    def upsert(self, tenant: str, records: Iterable[ChunkRecord]) -> int:
        """All-or-nothing: a bad record rolls back the whole call; stored records stay intact."""
        written = 0
        with self._writing(tenant) as state:
            dim = state.db.dim()
            iterator = iter(records)
            with state.db.transaction() as (conn, seq):
                while batch := list(islice(iterator, WRITE_BATCH)):
                    vectors = []
                    for record in batch:
                        vectors.append(check_record(record, dim))
                        if dim is None:
                            dim = len(vectors[0])
                            state.db.set_dim(conn, dim)
                    latest = {r.chunk_id: r for r in batch}  # last write of an id wins
                    by_id = dict(zip([r.chunk_id for r in batch], vectors, strict=True))
                    unique = list(latest.values())
                    state.db.insert(conn, seq, unique, [by_id[r.chunk_id] for r in unique])
                    written += len(batch)
            state.sync()
            state.maybe_save()
        return written

    def delete(self, tenant: str, chunk_ids: Iterable[str]) -> int:
        if isinstance(chunk_ids, str):
            raise TypeError("chunk_ids must be an iterable of ids, not a single string")
        ids = list(dict.fromkeys(chunk_ids))
        if not ids or not self._exists(tenant):
            return 0
        with self._writing(tenant) as state:
            with state.db.transaction() as (conn, seq):
                deleted = state.db.delete_ids(conn, seq, ids)
            state.sync()
            state.maybe_save()
        return deleted

    def update_metadata(
        self, tenant: str, metadata: Mapping[str, Mapping[str, MetadataValue]]
    ) -> int:
        """Replace the metadata of stored chunks in place: no new vector, no ANN tombstone."""
        checked = {cid: check_metadata(f"chunk {cid!r}", m) for cid, m in metadata.items()}
        if not checked or not self._exists(tenant):
            return 0
        with self._writing(tenant) as state, state.db.transaction() as (conn, _):
            return state.db.set_metadata(conn, checked)

    def set_embedding_space(self, tenant: str, space: str) -> int:
        """Record the space in the records database (it travels with snapshots); records of
        another recorded space are deleted in the same transaction."""
        if not space:
            raise ValueError("space: must be a non-empty model and backend name")
        with self._writing(tenant) as state:
            with state.db.transaction() as (conn, seq):
                recorded = state.db.get_meta(SPACE_KEY, conn)
                deleted = 0
                if recorded is not None and recorded != space:
                    ids = [row[0] for row in conn.execute("SELECT chunk_id FROM chunks")]
                    deleted = state.db.delete_ids(conn, seq, ids) if ids else 0
                conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (SPACE_KEY, space))
            state.sync()
            state.maybe_save()
        return deleted

    def embedding_space(self, tenant: str) -> str | None:
        with self._reading(tenant) as state:
            return state.db.get_meta(SPACE_KEY) if state else None

    def drop_tenant(self, tenant: str) -> None:
        check_tenant(tenant)
        with self._open_lock(tenant):
            self._evict(tenant)
            shutil.rmtree(self.root / tenant, ignore_errors=True)

    # --- reads -------------------------------------------------------------------------------
    def count(self, tenant: str) -> int:
        with self._reading(tenant) as state:
            return state.db.count() if state else 0

    def get_records(self, tenant: str, chunk_ids: Iterable[str]) -> list[ChunkRecord]:
        if isinstance(chunk_ids, str):
            raise TypeError("chunk_ids must be an iterable of ids, not a single string")
        ids = list(dict.fromkeys(chunk_ids))
        if not ids:
            return []
        with self._reading(tenant) as state:
            return state.db.records(ids) if state else []

    def indexed_metadata(self, tenant: str) -> dict[str, str]:
        with self._reading(tenant) as state:
            return state.db.chunk_metadata() if state else {}

    def tenants(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / CURRENT).is_file())

    def search(
        self,
        tenant: str,
        *,
        query_text: str,
        query_vector: np.ndarray | None,
        k: int = 5,
        mode: SearchMode = SearchMode.HYBRID,
        filters: Mapping[str, MetadataValue] | None = None,
        min_score: float | None = None,
    ) -> list[SearchHit]:
        check_search_args(query_text, query_vector, k, mode, min_score)
        flt = check_filters(filters)
        with self._reading(tenant) as state:
            if state is None:
                return []
            dim = state.db.dim()
            vec = None
            if query_vector is not None:
                vec = check_vector(query_vector, dim, "query_vector")
            return es.search(state, SearchMode(mode), query_text, vec, k, flt, min_score)

    def exact_search(self, tenant: str, query_vector: np.ndarray, k: int = 10) -> list[SearchHit]:
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        with self._reading(tenant) as state:
            if state is None:
                return []
            vec = check_vector(query_vector, state.db.dim(), "query_vector")
            ranked = es.exact(state, vec, k, {})
            return es.hits(state, [(label, vector_score(c)) for label, c in ranked], k, None)

    def iter_records(self, tenant: str, batch_size: int = 1024) -> Iterator[list[ChunkRecord]]:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        with self._reading(tenant) as state:
            if state is None:
                return
            db = state.db
        with self._guard(tenant):
            yield from db.iter_records(batch_size)

    # --- maintenance -------------------------------------------------------------------------
    def rebuild(self, tenant: str) -> int:
        """Works on a tenant whose ANN file is damaged: only the records database is needed."""
        with self._writing(tenant, load_ann=False) as state:
            return state.rebuild()

    def _existing(self, tenant: str) -> None:
        if not self._exists(tenant):
            raise VectorStoreError(f"tenant {tenant!r} has no index in {self.root}")

    def verify(self, tenant: str) -> None:
        self._existing(tenant)
        with self._writing(tenant) as state:
            records = state.db.integrity_problems()
            derived = [*state.ann_file_problems(state.read_manifest())]
            count, live = state.db.count(), state.ann.live if state.ann else 0
            if count != live:
                derived.append(f"ANN index holds {live} vectors but the records database {count}")
            if records or derived:
                raise self._corrupted(tenant, "; ".join(records + derived), ann_only=not records)

    def flush(self, tenant: str | None = None) -> None:
        """Persist unsaved ANN changes (replayable from SQLite anyway: this saves open time)."""
        names = [tenant] if tenant else list(self._tenants)
        for name in names:
            if not self._exists(name):
                continue
            with self._writing(name) as state:
                if state.unsaved or (state.ann is not None and not state.manifest.get("ann_file")):
                    state.save()

    def backup(
        self, tenant: str, snapshots_dir: Path, cipher: ValueCipher = PLAINTEXT
    ) -> SnapshotInfo:
        from agent_platform.vectorstore.embedded_backup import backup

        self._existing(tenant)
        self.flush(tenant)
        with self._writing(tenant) as state:
            return backup(state, Path(snapshots_dir), cipher)

    def list_snapshots(self, tenant: str, snapshots_dir: Path) -> list[SnapshotInfo]:
        return snap.list_snapshots(Path(snapshots_dir), check_tenant(tenant))

    def restore(
        self,
        tenant: str,
        snapshots_dir: Path,
        snapshot_id: str,
        cipher: ValueCipher = PLAINTEXT,
    ) -> SnapshotInfo:
        """Verify the snapshot, stage a decrypted copy, then swap it in with one os.replace."""
        from agent_platform.vectorstore.embedded_backup import restore

        check_tenant(tenant)
        return restore(self, tenant, Path(snapshots_dir), snapshot_id, cipher)

    def prune_snapshots(self, tenant: str, snapshots_dir: Path, retention_days: int) -> list[str]:
        return snap.prune(Path(snapshots_dir), check_tenant(tenant), retention_days)

    def close(self) -> None:
        """Save unsaved ANN changes (only where this state is still the live one), then evict."""
        for name, state in list(self._tenants.items()):
            if state.unsaved and state.acquire():
                try:
                    with state.write_lock, tenant_lock(state.tenant_dir):
                        if not state.changed_on_disk():
                            state.save()
                except (OSError, sqlite3.Error):
                    pass  # unsaved ANN changes are replayed from SQLite on the next open
                finally:
                    state.release()
            with self._open_lock(name):
                if self._tenants.get(name) is state:
                    self._evict(name)
