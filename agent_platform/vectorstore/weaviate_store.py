"""`VectorStore` over Weaviate (client v4): one multi-tenant collection, vectors we provide.

One store object serves one namespace (`namespaces.py`): knowledge chunks in
`AgentPlatformChunks`, long-term memories in `AgentPlatformMemories`. A tenant is a Weaviate
tenant inside that collection, so no tenant name can reach the other namespace.

Chunk ids map to uuid5(tenant, chunk_id), so re-inserting a chunk overwrites it (batch inserts
with an existing UUID replace the object). Metadata keys become `m_<key>` properties so they can be
filtered; `metadata_json` keeps the exact values. Scores follow `validation.py`: vector
`1 - distance/2` (= (1+cos)/2 for the cosine distance), keyword the query coverage of
`keyword_scale.py` (words match unstemmed, as Weaviate's `word` tokenizer), hybrid Weaviate's
rankedFusion (alpha 0.5, weights summing to 1, best possible 1/60) multiplied by 60 and clipped.

Snapshots: Weaviate backs up whole collections (all tenants) and cannot restore into an existing
collection, so per-tenant `backup`/`restore` export the tenant's objects with vectors to a
checksummed Parquet file under `snapshots_dir` (same manifest format as the embedded store) and
re-import them. `backup_collection`/`restore_collection` wrap `client.backup` (filesystem backend)
for whole-cluster disaster recovery.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from agent_platform.security.crypto.cipher import PLAINTEXT, ValueCipher
from agent_platform.vectorstore import keyword_scale
from agent_platform.vectorstore import snapshots as snap
from agent_platform.vectorstore.base import (
    ChunkRecord,
    IndexCorruptedError,
    MetadataValue,
    SearchHit,
    SearchMode,
    SnapshotInfo,
    VectorStoreError,
    canonical_metadata,
)
from agent_platform.vectorstore.namespaces import WEAVIATE_COLLECTIONS, StoreNamespace
from agent_platform.vectorstore.validation import (
    check_filters,
    check_metadata,
    check_record,
    check_search_args,
    check_tenant,
    check_vector,
    vector_score,
)
from agent_platform.vectorstore.weaviate_schema import (
    chunk_uuid,
    create_collection,
    metadata_properties,
    weaviate_filter,
)


def _space_uuid(tenant: str) -> str:
    from weaviate.util import generate_uuid5

    return str(generate_uuid5(tenant, "embedding-space"))


KEYWORD_DEPTH = 50  # BM25 candidates re-ranked by coverage
PROPS = ["chunk_id", "document_id", "source", "text", "metadata_json"]


class WeaviateVectorStore:  # pragma: no cover - needs a Weaviate server (WEAVIATE_URL), none here
    """Talks to a running Weaviate; `url` like http://localhost:8080 (gRPC on `grpc_port`)."""

    backend_name = "weaviate"

    def __init__(
        self,
        url: str,
        *,
        grpc_port: int = 50051,
        api_key: str | None = None,
        collection: str = WEAVIATE_COLLECTIONS[StoreNamespace.KNOWLEDGE],
        snapshots_dir: Path | None = None,
        ef: int = 128,
        ef_construction: int = 128,
        max_connections: int = 32,
    ) -> None:
        import weaviate
        from weaviate.classes.init import Auth

        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"weaviate_url {url!r} must look like http://host:8080")
        secure = parsed.scheme == "https"
        self._client = weaviate.connect_to_custom(
            http_host=parsed.hostname,
            http_port=parsed.port or (443 if secure else 80),
            http_secure=secure,
            grpc_host=parsed.hostname,
            grpc_port=grpc_port,
            grpc_secure=secure,
            auth_credentials=Auth.api_key(api_key) if api_key else None,
        )
        self.snapshots_dir = snapshots_dir
        self._name = collection
        if not self._client.collections.exists(collection):
            create_collection(self._client, collection, ef, ef_construction, max_connections)
        self._col = self._client.collections.get(collection)
        self._dims: dict[str, int] = {}

    @classmethod
    def connect(
        cls, url: str, grpc_port: int = 50051, api_key: str | None = None, **kwargs: Any
    ) -> WeaviateVectorStore:
        """Keyword-style constructor (used by the Dagster resource)."""
        return cls(url, grpc_port=grpc_port, api_key=api_key, **kwargs)

    # --- helpers -----------------------------------------------------------------------------
    def _tenant(self, tenant: str) -> Any:
        return self._col.with_tenant(check_tenant(tenant))

    def _exists(self, tenant: str) -> bool:
        return check_tenant(tenant) in self._col.tenants.get()

    def _dim(self, tenant: str) -> int | None:
        if tenant not in self._dims and self._exists(tenant):
            for obj in self._tenant(tenant).iterator(include_vector=True, cache_size=1):
                self._dims[tenant] = len(obj.vector["default"])
                break
        return self._dims.get(tenant)

    @staticmethod
    def _record(obj: Any) -> ChunkRecord:
        p = obj.properties
        return ChunkRecord(
            chunk_id=p["chunk_id"],
            document_id=p["document_id"],
            source=p["source"],
            text=p["text"],
            vector=np.asarray(obj.vector["default"], dtype=np.float32),
            metadata=json.loads(p.get("metadata_json") or "{}"),
        )

    @staticmethod
    def _hit(obj: Any, score: float) -> SearchHit:
        p = obj.properties
        return SearchHit(
            chunk_id=p["chunk_id"],
            document_id=p["document_id"],
            source=p["source"],
            text=p["text"],
            score=float(min(1.0, max(0.0, score))),
            metadata=json.loads(p.get("metadata_json") or "{}"),
        )

    # --- writes ------------------------------------------------------------------------------
    def upsert(self, tenant: str, records: Iterable[ChunkRecord]) -> int:
        """Validates every record before sending any, so bad input changes nothing."""
        from weaviate.classes.data import DataObject

        dim = self._dim(tenant)
        objects = []
        for record in records:
            vector = check_record(record, dim)
            dim = dim or len(vector)
            props = {"chunk_id": record.chunk_id, "document_id": record.document_id}
            props |= {"source": record.source, "text": record.text}
            props["metadata_json"] = canonical_metadata(record.metadata)
            props |= metadata_properties(record.metadata)
            objects.append(
                DataObject(
                    properties=props,
                    uuid=chunk_uuid(tenant, record.chunk_id),
                    vector=vector.tolist(),
                )
            )
        if not objects:
            return 0
        col = self._tenant(tenant)
        for start in range(0, len(objects), 500):
            result = col.data.insert_many(objects[start : start + 500])
            if result.has_errors:
                errors = "; ".join(str(e.message) for e in list(result.errors.values())[:3])
                raise VectorStoreError(f"Weaviate rejected records for tenant {tenant!r}: {errors}")
        self._dims[tenant] = int(dim or 0)
        return len(objects)

    def delete(self, tenant: str, chunk_ids: Iterable[str]) -> int:
        from weaviate.classes.query import Filter

        if isinstance(chunk_ids, str):
            raise TypeError("chunk_ids must be an iterable of ids, not a single string")
        ids = [chunk_uuid(tenant, c) for c in dict.fromkeys(chunk_ids)]
        if not ids or not self._exists(tenant):
            return 0
        deleted = 0
        for start in range(0, len(ids), 1000):
            where = Filter.by_id().contains_any(ids[start : start + 1000])
            deleted += self._tenant(tenant).data.delete_many(where=where).successful
        return deleted

    def update_metadata(
        self, tenant: str, metadata: Mapping[str, Mapping[str, MetadataValue]]
    ) -> int:
        """A property update (PATCH) per chunk: the vector stays. A chunk losing a metadata key
        is replaced whole with its stored vector instead, since PATCH cannot unset `m_<key>`."""
        checked = {cid: check_metadata(f"chunk {cid!r}", m) for cid, m in metadata.items()}
        if not checked or not self._exists(tenant):
            return 0
        col = self._tenant(tenant)
        updated = 0
        for chunk_id, values in checked.items():
            uuid = chunk_uuid(tenant, chunk_id)
            obj = col.query.fetch_object_by_id(uuid, include_vector=True, return_properties=PROPS)
            if obj is None:
                continue
            new_props = metadata_properties(values)
            props = {"metadata_json": canonical_metadata(values)} | new_props
            old = json.loads(obj.properties.get("metadata_json") or "{}")
            if metadata_properties(old).keys() <= new_props.keys():
                col.data.update(uuid=uuid, properties=props)
            else:
                kept = {k: obj.properties[k] for k in PROPS if k != "metadata_json"}
                col.data.replace(uuid=uuid, properties=kept | props, vector=obj.vector["default"])
            updated += 1
        return updated

    def drop_tenant(self, tenant: str) -> None:
        if self._exists(tenant):
            self._col.tenants.remove([tenant])
        self._dims.pop(tenant, None)
        spaces = self._spaces()
        if spaces.data.exists(_space_uuid(tenant)):
            spaces.data.delete_by_id(_space_uuid(tenant))

    # --- embedding space: one object per tenant in a small collection beside the chunks ------
    def _spaces(self) -> Any:
        name = f"{self._name}Spaces"
        if not self._client.collections.exists(name):
            from weaviate.classes.config import Configure, DataType, Property

            self._client.collections.create(
                name,
                vector_config=Configure.Vectors.self_provided(),
                properties=[
                    Property(name="tenant", data_type=DataType.TEXT),
                    Property(name="space", data_type=DataType.TEXT),
                ],
            )
        return self._client.collections.get(name)

    def embedding_space(self, tenant: str) -> str | None:
        obj = self._spaces().query.fetch_object_by_id(_space_uuid(check_tenant(tenant)))
        return str(obj.properties["space"]) if obj is not None else None

    def set_embedding_space(self, tenant: str, space: str) -> int:
        if not space:
            raise ValueError("space: must be a non-empty model and backend name")
        recorded = self.embedding_space(tenant)
        deleted = 0
        if recorded is not None and recorded != space:
            deleted = self.count(tenant)
            if self._exists(tenant):
                self._col.tenants.remove([tenant])
            self._dims.pop(tenant, None)
        spaces, uuid = self._spaces(), _space_uuid(tenant)
        props = {"tenant": tenant, "space": space}
        if spaces.data.exists(uuid):
            spaces.data.replace(uuid=uuid, properties=props)
        else:
            spaces.data.insert(properties=props, uuid=uuid)
        return deleted

    # --- reads -------------------------------------------------------------------------------
    def count(self, tenant: str) -> int:
        if not self._exists(tenant):
            return 0
        return int(self._tenant(tenant).aggregate.over_all(total_count=True).total_count or 0)

    def get_records(self, tenant: str, chunk_ids: Iterable[str]) -> list[ChunkRecord]:
        from weaviate.classes.query import Filter

        if isinstance(chunk_ids, str):
            raise TypeError("chunk_ids must be an iterable of ids, not a single string")
        ids = list(dict.fromkeys(chunk_ids))
        if not ids or not self._exists(tenant):
            return []
        found: dict[str, ChunkRecord] = {}
        for start in range(0, len(ids), 500):
            part = [chunk_uuid(tenant, c) for c in ids[start : start + 500]]
            res = self._tenant(tenant).query.fetch_objects(
                filters=Filter.by_id().contains_any(part),
                limit=len(part),
                include_vector=True,
                return_properties=PROPS,
            )
            found.update((o.properties["chunk_id"], self._record(o)) for o in res.objects)
        return [found[c] for c in ids if c in found]

    def indexed_metadata(self, tenant: str) -> dict[str, str]:
        if not self._exists(tenant):
            return {}
        objects = self._tenant(tenant).iterator(return_properties=["chunk_id", "metadata_json"])
        return {
            o.properties["chunk_id"]: o.properties.get("metadata_json") or "{}" for o in objects
        }

    def tenants(self) -> list[str]:
        return sorted(self._col.tenants.get())

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
        from weaviate.classes.query import HybridFusion, MetadataQuery

        check_search_args(query_text, query_vector, k, mode, min_score)
        where = weaviate_filter(check_filters(filters))
        mode = SearchMode(mode)
        if not self._exists(tenant):
            return []
        vec = None
        if query_vector is not None:
            vec = check_vector(query_vector, self._dim(tenant), "query_vector").tolist()
        q = self._tenant(tenant).query
        if mode is SearchMode.VECTOR:
            res = q.near_vector(
                vec, limit=k, filters=where, return_metadata=MetadataQuery(distance=True)
            )
            hits = [self._hit(o, 1.0 - o.metadata.distance / 2.0) for o in res.objects]
        elif mode is SearchMode.KEYWORD:
            terms = keyword_scale.query_terms(query_text)
            res = q.bm25(
                " ".join(terms),
                query_properties=["text"],
                limit=max(KEYWORD_DEPTH, 2 * k),
                filters=where,
                return_metadata=MetadataQuery(score=True),
            )
            ranked = keyword_scale.rank(
                res.objects, terms, lambda o: keyword_scale.words(o.properties["text"])
            )
            hits = [self._hit(o, score) for o, score in ranked[:k]]
        else:
            res = q.hybrid(
                query_text,
                vector=vec,
                alpha=0.5,
                fusion_type=HybridFusion.RANKED,
                query_properties=["text"],
                limit=k,
                filters=where,
                return_metadata=MetadataQuery(score=True),
            )
            hits = [self._hit(o, (o.metadata.score or 0.0) * 60.0) for o in res.objects]
        return [h for h in hits if min_score is None or h.score >= min_score]

    def exact_search(self, tenant: str, query_vector: np.ndarray, k: int = 10) -> list[SearchHit]:
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        vec = check_vector(query_vector, self._dim(tenant), "query_vector")
        scored: list[tuple[float, ChunkRecord]] = []
        for batch in self.iter_records(tenant, 2048):
            sims = np.stack([r.vector for r in batch]) @ vec
            scored += list(zip(sims.tolist(), batch, strict=True))
            scored = sorted(scored, key=lambda p: -p[0])[:k]
        return [
            SearchHit(r.chunk_id, r.document_id, r.source, r.text, vector_score(s), r.metadata)
            for s, r in scored
        ]

    def iter_records(self, tenant: str, batch_size: int = 1024) -> Iterator[list[ChunkRecord]]:
        if not self._exists(tenant):
            return
        batch: list[ChunkRecord] = []
        objects = self._tenant(tenant).iterator(
            include_vector=True, return_properties=PROPS, cache_size=batch_size
        )
        for o in objects:
            batch.append(self._record(o))
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    # --- maintenance -------------------------------------------------------------------------
    def rebuild(self, tenant: str) -> int:
        """Weaviate maintains its HNSW and inverted indexes itself; nothing to swap client-side."""
        return self.count(tenant)

    def verify(self, tenant: str) -> None:
        hint = snap.restore_hint(tenant, snap.latest_snapshot_id(self.snapshots_dir, tenant))
        if not self._client.is_ready():
            raise VectorStoreError(f"Weaviate is not ready; cannot verify tenant {tenant!r}")
        status = self._col.tenants.get().get(tenant)
        if status is None:
            raise IndexCorruptedError(f"tenant {tenant!r} is missing in Weaviate. Repair: {hint}")
        try:
            total = self.count(tenant)
            seen = sum(len(b) for b in self.iter_records(tenant, 2048))
        except Exception as exc:  # any server-side read failure means the shard is unusable
            problem = f"tenant {tenant!r} is unreadable ({exc}). Repair: {hint}"
            raise IndexCorruptedError(problem) from exc
        if total != seen:
            raise IndexCorruptedError(
                f"tenant {tenant!r}: count {total} but {seen} objects readable. Repair: {hint}"
            )

    def backup(
        self, tenant: str, snapshots_dir: Path, cipher: ValueCipher = PLAINTEXT
    ) -> SnapshotInfo:
        from agent_platform.vectorstore.weaviate_snapshots import export_tenant

        return export_tenant(self, tenant, Path(snapshots_dir), cipher)

    def list_snapshots(self, tenant: str, snapshots_dir: Path) -> list[SnapshotInfo]:
        return snap.list_snapshots(Path(snapshots_dir), check_tenant(tenant))

    def restore(
        self,
        tenant: str,
        snapshots_dir: Path,
        snapshot_id: str,
        cipher: ValueCipher = PLAINTEXT,
    ) -> SnapshotInfo:
        from agent_platform.vectorstore.weaviate_snapshots import import_tenant

        return import_tenant(self, check_tenant(tenant), Path(snapshots_dir), snapshot_id, cipher)

    def prune_snapshots(self, tenant: str, snapshots_dir: Path, retention_days: int) -> list[str]:
        return snap.prune(Path(snapshots_dir), check_tenant(tenant), retention_days)

    def backup_collection(self, backup_id: str) -> None:
        """Server-side backup of the whole collection (all tenants) to the filesystem backend."""
        from weaviate.classes.backup import BackupStorage

        self._client.backup.create(
            backup_id=backup_id,
            backend=BackupStorage.FILESYSTEM,
            include_collections=[self._name],
            wait_for_completion=True,
        )

    def restore_collection(self, backup_id: str) -> None:
        """Restore the collection from a server-side backup (the collection must not exist)."""
        from weaviate.classes.backup import BackupStorage

        self._client.backup.restore(
            backup_id=backup_id,
            backend=BackupStorage.FILESYSTEM,
            include_collections=[self._name],
            wait_for_completion=True,
        )

    def close(self) -> None:
        self._client.close()
