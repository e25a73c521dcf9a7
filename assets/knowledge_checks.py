"""Asset checks on the knowledge pipeline. Blocking checks stop bad data flowing downstream."""

import warnings

import dagster as dg

from agent_platform.knowledge import quality
from agent_platform.knowledge.chunking import max_chunk_tokens
from assets.knowledge import document_chunks, embeddings, vector_index
from assets.partitions import tenants_partitions
from resources.embedder import EmbedderResource
from resources.knowledge import KnowledgeWorkspaceResource
from resources.vector_store import VectorStoreResource

# Partitioned asset checks are a Dagster preview feature; tenants need them, so accept the preview.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def.*")


def _result(outcome: quality.CheckOutcome) -> dg.AssetCheckResult:
    metadata: dict[str, dg.RawMetadataValue] = {"summary": outcome.summary, **outcome.metrics}
    if outcome.failures:
        metadata["failures"] = dg.MetadataValue.json(outcome.failures)
    return dg.AssetCheckResult(passed=outcome.passed, metadata=metadata)


@dg.asset_check(asset=document_chunks, blocking=True, partitions_def=tenants_partitions)
def chunk_schema(
    context: dg.AssetCheckExecutionContext,
    knowledge: KnowledgeWorkspaceResource,
    embedder: EmbedderResource,
) -> dg.AssetCheckResult:
    """Chunks satisfy the pandera schema, have unique ids and fit the model's sequence length."""
    max_tokens = max_chunk_tokens(embedder.embedder)
    return _result(quality.check_chunk_schema(knowledge.tables(context.partition_key), max_tokens))


@dg.asset_check(asset=embeddings, blocking=True, partitions_def=tenants_partitions)
def embeddings_well_formed(
    context: dg.AssetCheckExecutionContext,
    knowledge: KnowledgeWorkspaceResource,
    embedder: EmbedderResource,
) -> dg.AssetCheckResult:
    """Every vector has the model's dimension, finite values and unit norm."""
    tables = knowledge.tables(context.partition_key)
    return _result(quality.check_embeddings(tables, embedder.embedder.dimension))


@dg.asset_check(asset=vector_index, blocking=True, partitions_def=tenants_partitions)
def index_count_matches_chunks(
    context: dg.AssetCheckExecutionContext,
    knowledge: KnowledgeWorkspaceResource,
    vector_store: VectorStoreResource,
) -> dg.AssetCheckResult:
    """The index holds exactly the chunks of the chunk table."""
    tenant = context.partition_key
    return _result(quality.check_index_count(vector_store.store, tenant, knowledge.tables(tenant)))


@dg.asset_check(asset=vector_index, blocking=True, partitions_def=tenants_partitions)
def ann_recall_at_10(
    context: dg.AssetCheckExecutionContext,
    knowledge: KnowledgeWorkspaceResource,
    vector_store: VectorStoreResource,
) -> dg.AssetCheckResult:
    """Approximate search finds ≥ 95% of the exact top 10 on a sample of queries."""
    tenant = context.partition_key
    return _result(quality.check_ann_recall(vector_store.store, tenant, knowledge.tables(tenant)))


knowledge_checks = [
    chunk_schema,
    embeddings_well_formed,
    index_count_matches_chunks,
    ann_recall_at_10,
]
