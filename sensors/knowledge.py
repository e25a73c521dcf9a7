"""Registers new tenants and requests a run when a tenant's documents change.

The cursor holds a digest of every supported file's content hash per tenant (not mtimes), so a
touched but unchanged file triggers nothing and an edited one always does. A tenant the cursor
does not know starts from the digest its `source_documents` partition last recorded, so a sensor
switched on over an existing home (a first `make ui` after `make demo`) requests nothing.
"""

import json

import dagster as dg

from agent_platform.knowledge.documents import directory_digest
from assets.jobs import knowledge_job
from assets.knowledge import source_documents
from assets.partitions import tenants_partitions
from resources.knowledge import KnowledgeWorkspaceResource


def _materialized_digest(instance: dg.DagsterInstance, tenant: str) -> str | None:
    """The source digest the tenant's last `source_documents` materialization recorded."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=source_documents.key, asset_partitions=[tenant]), limit=1
    ).records
    materialization = records[0].asset_materialization if records else None
    recorded = materialization.metadata.get("source_digest") if materialization else None
    return str(recorded.value) if recorded is not None else None


@dg.sensor(
    job=knowledge_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING
)
def knowledge_sources_sensor(
    context: dg.SensorEvaluationContext, knowledge: KnowledgeWorkspaceResource
) -> dg.SensorResult:
    """New tenant directory → new partition; changed document content → a run for that tenant."""
    previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(tenants_partitions.name))
    cursor: dict[str, str] = {}
    new_tenants: list[str] = []
    run_requests: list[dg.RunRequest] = []
    for tenant, source_dir in knowledge.discover_tenants().items():
        if not source_dir.is_dir():
            context.log.warning(f"tenant {tenant}: source directory {source_dir} is missing")
            continue
        digest = directory_digest(source_dir)
        cursor[tenant] = digest
        if tenant not in known:
            new_tenants.append(tenant)
        baseline = previous.get(tenant)
        if tenant not in previous and tenant in known:
            baseline = _materialized_digest(context.instance, tenant)
        if baseline != digest:
            run_requests.append(
                dg.RunRequest(partition_key=tenant, run_key=f"{tenant}-{digest[:16]}")
            )
    if not run_requests and not new_tenants:
        return dg.SensorResult(
            skip_reason="no tenant's documents changed", cursor=json.dumps(cursor, sort_keys=True)
        )
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=(
            [tenants_partitions.build_add_request(new_tenants)] if new_tenants else []
        ),
        cursor=json.dumps(cursor, sort_keys=True),
    )
