"""The knowledge pipeline per tenant: documents → chunks → embeddings → vector index → snapshots.

Each asset streams a Parquet table (or the index) and reports the numbers a person needs.
"""

import dagster as dg

from agent_platform.knowledge import pipeline
from agent_platform.knowledge.chunking import chunker_for
from agent_platform.knowledge.documents import directory_digest
from agent_platform.knowledge.repair import sync_repairing
from agent_platform.progress import progress_reporter
from assets.partitions import tenants_partitions
from resources.embedder import EmbedderResource
from resources.keys import KeyRingResource
from resources.knowledge import KnowledgeWorkspaceResource
from resources.vector_store import VectorStoreResource

GROUP = "knowledge"

# The badges of the index assets follow the configured backend (`for_backend`); the decorators
# carry the embedded default's.
BACKEND_KINDS: dict[str, dict[str, set[str]]] = {
    "embedded": {"vector_index": {"sqlite", "hnswlib"}, "index_snapshot": {"sqlite"}},
    "weaviate": {"vector_index": {"weaviate"}, "index_snapshot": {"weaviate", "parquet"}},
}


def _skipped_markdown(skipped: list) -> str:
    if not skipped:
        return "No files were skipped."
    rows = "\n".join(f"| `{s.path}` | {s.reason} |" for s in skipped)
    return f"| file | reason |\n|---|---|\n{rows}"


@dg.asset(partitions_def=tenants_partitions, group_name=GROUP, kinds={"python", "parquet"})
def source_documents(
    context: dg.AssetExecutionContext, knowledge: KnowledgeWorkspaceResource
) -> dg.MaterializeResult:
    """The tenant's documents (.md, .txt, .html, .pdf), normalised, with a content hash each."""
    tenant = context.partition_key
    source_dir = knowledge.source_dir(tenant)
    summary = pipeline.load_documents(
        source_dir, knowledge.tables(tenant), knowledge.max_document_bytes
    )
    for skipped in summary.skipped:
        context.log.warning(f"skipped {skipped.path}: {skipped.reason}")
    return dg.MaterializeResult(
        metadata={
            "source_dir": dg.MetadataValue.path(str(source_dir)),
            "source_digest": directory_digest(source_dir),  # the sources sensor's baseline
            "documents_seen": summary.documents_seen,
            "documents_loaded": summary.documents_loaded,
            "documents_added": summary.documents_added,
            "documents_changed": summary.documents_changed,
            "documents_removed": summary.documents_removed,
            "documents_kept_from_previous": summary.documents_kept_from_previous,
            "documents_skipped": dg.MetadataValue.json(
                [{"path": s.path, "reason": s.reason} for s in summary.skipped]
            ),
            "skipped_files": dg.MetadataValue.md(_skipped_markdown(summary.skipped)),
        }
    )


@dg.asset(
    partitions_def=tenants_partitions,
    group_name=GROUP,
    deps=[source_documents],
    kinds={"langchain", "parquet"},
)
def document_chunks(
    context: dg.AssetExecutionContext,
    knowledge: KnowledgeWorkspaceResource,
    embedder: EmbedderResource,
) -> dg.MaterializeResult:
    """Token-aware chunks with overlap, measured in the embedding model's tokens."""
    chunker = chunker_for(embedder.embedder, knowledge.chunk_tokens, knowledge.chunk_overlap_tokens)
    summary = pipeline.chunk_documents(knowledge.tables(context.partition_key), chunker)
    return dg.MaterializeResult(
        metadata={
            "chunks_total": summary.chunks_total,
            "documents_chunked": summary.documents_chunked,
            "documents_reused": summary.documents_reused,
            "chunk_tokens": chunker.chunk_tokens,
            "dagster/row_count": summary.chunks_total,
        }
    )


@dg.asset(
    partitions_def=tenants_partitions,
    group_name=GROUP,
    deps=[document_chunks],
    kinds={"sentence-transformers", "parquet"},
)
def embeddings(
    context: dg.AssetExecutionContext,
    knowledge: KnowledgeWorkspaceResource,
    embedder: EmbedderResource,
) -> dg.MaterializeResult:
    """Unit-norm float32 vectors for every chunk; cached vectors are reused across tenants."""
    with progress_reporter("embedding chunks", context.log.info) as progress:
        summary = pipeline.embed_chunks(
            knowledge.tables(context.partition_key), embedder.embedder, progress=progress
        )
    for note in embedder.embedder.load_notes:
        context.log.warning(f"embedding model fallback: {note}")
    return dg.MaterializeResult(
        metadata={
            "model": summary.model,
            "dimension": summary.dimension,
            "chunks_total": summary.chunks_total,
            "chunks_embedded": summary.chunks_embedded,
            "chunks_reused": summary.chunks_reused,
        }
    )


class VectorIndexConfig(dg.Config):
    """`rebuild` regenerates the ANN and keyword indexes from the stored records first (weekly
    schedule, `index rebuild`); it also repairs a damaged ANN file."""

    rebuild: bool = False


@dg.asset(
    partitions_def=tenants_partitions,
    group_name=GROUP,
    deps=[embeddings],
    kinds=BACKEND_KINDS["embedded"]["vector_index"],
)
def vector_index(
    context: dg.AssetExecutionContext,
    config: VectorIndexConfig,
    knowledge: KnowledgeWorkspaceResource,
    vector_store: VectorStoreResource,
) -> dg.MaterializeResult:
    """The tenant's searchable index: new chunks upserted, removed chunks deleted; a damaged
    index is repaired from the stored records or, when those are damaged, from the chunks."""
    tenant = context.partition_key
    store = vector_store.store
    rebuilt = store.rebuild(tenant) if config.rebuild else None
    if rebuilt is not None:
        context.log.info(f"rebuilt the index of {tenant} from {rebuilt} stored vectors")
    summary, repair = sync_repairing(tenant, knowledge.tables(tenant), store)
    if repair is not None:
        context.log.warning(f"damaged index of {tenant} {repair.action}: {repair.problem}")
    return dg.MaterializeResult(
        metadata={
            "backend": vector_store.backend_name,
            "chunks_upserted": summary.chunks_upserted,
            "chunks_deleted": summary.chunks_deleted,
            "chunks_total": summary.chunks_total,
            "rebuilt": rebuilt is not None,
            "repaired": repair.action if repair else "none",
        }
    )


@dg.asset(
    partitions_def=tenants_partitions,
    group_name=GROUP,
    deps=[vector_index],
    kinds=BACKEND_KINDS["embedded"]["index_snapshot"],
)
def index_snapshot(
    context: dg.AssetExecutionContext,
    vector_store: VectorStoreResource,
    key_ring: KeyRingResource,
) -> dg.MaterializeResult:
    """A restorable copy of the tenant's index, its text sealed with the tenant's data key;
    snapshots past the retention are pruned."""
    tenant = context.partition_key
    store = vector_store.store
    cipher = key_ring.cipher()
    snapshot = store.backup(tenant, vector_store.snapshots_path, cipher)
    pruned = store.prune_snapshots(
        tenant, vector_store.snapshots_path, vector_store.snapshot_retention_days
    )
    return dg.MaterializeResult(
        metadata={
            "snapshot_id": snapshot.snapshot_id,
            "location": dg.MetadataValue.path(snapshot.location),
            "chunk_count": snapshot.chunk_count,
            "text_encrypted": cipher.enabled,
            "pruned": dg.MetadataValue.json(pruned),
            "restore_command": dg.MetadataValue.md(
                f"`agent-platform index restore --tenant {tenant} "
                f"--snapshot {snapshot.snapshot_id}`"
            ),
        }
    )


def for_backend(asset: dg.AssetsDefinition, backend: str) -> dg.AssetsDefinition:
    """`asset` (the index or its snapshot) badged with the kinds of the configured backend."""
    kinds = BACKEND_KINDS[backend][asset.key.path[-1]]
    return asset.map_asset_specs(lambda spec: spec.replace_attributes(kinds=kinds))
