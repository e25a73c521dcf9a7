"""Per-tenant Weaviate snapshots: export to a checksummed Parquet file, verified re-import.

Weaviate's own backups cover whole collections and restore only into a missing collection, so a
single tenant is snapshotted client-side. Restore verifies the file against the manifest first (a
bad snapshot is refused with the tenant untouched), then imports into a fresh tenant. Weaviate
has no tenant rename, so the swap is remove + re-create: searches during a restore may see the
tenant empty or partial (unlike the embedded store's atomic swap). With encryption on, the text
column is sealed (`snapshot_seal`); every text is opened once before the live tenant is touched.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from agent_platform.security.crypto.cipher import PLAINTEXT, ValueCipher
from agent_platform.security.crypto.errors import EncryptionError
from agent_platform.vectorstore import snapshot_seal as seal
from agent_platform.vectorstore import snapshots as snap
from agent_platform.vectorstore.base import ChunkRecord, SnapshotInfo

if TYPE_CHECKING:
    from agent_platform.vectorstore.weaviate_store import WeaviateVectorStore

PARQUET = "records.parquet"


def export_tenant(  # pragma: no cover - needs a Weaviate server (WEAVIATE_URL), none here
    store: WeaviateVectorStore, tenant: str, snapshots_dir: Path, cipher: ValueCipher = PLAINTEXT
) -> SnapshotInfo:
    import json

    now = snap.utc_now()
    target = snap.new_snapshot_dir(snapshots_dir, tenant, now)
    tmp = target.parent / f".{target.name}.tmp"
    tmp.mkdir(parents=True)
    try:
        writer, count = None, 0
        for batch in store.iter_records(tenant, 2048):
            table = pa.table(
                {
                    "chunk_id": [r.chunk_id for r in batch],
                    "document_id": [r.document_id for r in batch],
                    "source": [r.source for r in batch],
                    "text": [
                        seal.seal_text(cipher, tenant, target.name, r.chunk_id, r.text)
                        for r in batch
                    ],
                    "metadata_json": [json.dumps(dict(r.metadata)) for r in batch],
                    "vector": [r.vector.tolist() for r in batch],
                }
            )
            writer = writer or pq.ParquetWriter(tmp / PARQUET, table.schema)
            writer.write_table(table)
            count += len(batch)
        if writer is not None:
            writer.close()
        files = {PARQUET: snap.file_entry(tmp / PARQUET)} if count else {}
        manifest = {
            "format": 1,
            "backend": "weaviate",
            "snapshot_id": target.name,
            "tenant": tenant,
            "created_at": now.isoformat(),
            "chunk_count": count,
            "files": files,
            **seal.encryption_entry(cipher, tenant, target.name, files),
        }
        snap.write_json_atomic(tmp / snap.MANIFEST, manifest)
        tmp.replace(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return snap.info_from(target, manifest)


def _open_texts(  # pragma: no cover - used only by import_tenant (needs WEAVIATE_URL)
    parquet: pq.ParquetFile, tenant: str, snapshot_id: str, cipher: ValueCipher
) -> list[str]:
    """Problems opening the sealed texts (empty when every one opens)."""
    for batch in parquet.iter_batches(batch_size=2048, columns=["chunk_id", "text"]):
        for chunk_id, text in zip(
            batch["chunk_id"].to_pylist(), batch["text"].to_pylist(), strict=True
        ):
            try:
                seal.open_text(cipher, tenant, snapshot_id, chunk_id, text)
            except EncryptionError as exc:
                return [str(exc)]
    return []


def import_tenant(  # pragma: no cover - needs a Weaviate server (WEAVIATE_URL), none here
    store: WeaviateVectorStore,
    tenant: str,
    snapshots_dir: Path,
    snapshot_id: str,
    cipher: ValueCipher = PLAINTEXT,
) -> SnapshotInfo:
    import json

    sdir = snap.snapshot_dir(snapshots_dir, tenant, snapshot_id)
    manifest = snap.read_manifest(sdir)
    sealed_id = str(manifest.get("snapshot_id"))
    problems = snap.check_files(sdir, manifest) + seal.seal_problems(cipher, manifest, tenant)
    if manifest.get("tenant") != tenant or manifest.get("backend") != "weaviate":
        problems.append("it is not a Weaviate snapshot of this tenant")
    if not problems and manifest["chunk_count"]:
        problems = _open_texts(pq.ParquetFile(sdir / PARQUET), tenant, sealed_id, cipher)
    if problems:
        raise snap.SnapshotCorruptedError(
            f"snapshot {snapshot_id!r} of tenant {tenant!r} failed verification "
            f"({'; '.join(problems)}); it was not restored and the live tenant is unchanged"
        )
    store.drop_tenant(tenant)
    if manifest["chunk_count"]:
        parquet = pq.ParquetFile(sdir / PARQUET)
        for batch in parquet.iter_batches(batch_size=2048):
            rows = batch.to_pylist()
            store.upsert(
                tenant,
                [
                    ChunkRecord(
                        chunk_id=r["chunk_id"],
                        document_id=r["document_id"],
                        source=r["source"],
                        text=seal.open_text(cipher, tenant, sealed_id, r["chunk_id"], r["text"]),
                        metadata=json.loads(r["metadata_json"]),
                        vector=np.asarray(r["vector"], dtype=np.float32),
                    )
                    for r in rows
                ],
            )
    return snap.info_from(sdir, manifest)
