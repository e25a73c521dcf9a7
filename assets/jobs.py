"""Jobs over the knowledge assets: ingest, daily backup and weekly reindex."""

import dagster as dg

from assets.knowledge import index_snapshot, vector_index
from assets.partitions import tenants_partitions

knowledge_job = dg.define_asset_job(
    "knowledge_job",
    selection=dg.AssetSelection.groups("knowledge") - dg.AssetSelection.assets(index_snapshot),
    partitions_def=tenants_partitions,
    description="Load, chunk, embed and index one tenant's documents.",
)

index_backup_job = dg.define_asset_job(
    "index_backup_job",
    selection=dg.AssetSelection.assets(index_snapshot),
    partitions_def=tenants_partitions,
    description="Snapshot one tenant's index and prune snapshots past the retention.",
)

reindex_job = dg.define_asset_job(
    "reindex_job",
    selection=dg.AssetSelection.assets(vector_index),
    partitions_def=tenants_partitions,
    config=dg.RunConfig(ops={"vector_index": {"config": {"rebuild": True}}}),
    description="Rebuild one tenant's index from stored vectors, swapped in atomically.",
)

prompts_job = dg.define_asset_job(
    "prompts_job",
    selection=dg.AssetSelection.groups("prompts"),
    description="Validate, test and register every prompt template in MLflow.",
)
