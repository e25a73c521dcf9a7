"""Index a tenant's chunks, first repairing its index when it is damaged.

Each layer of a tenant's knowledge is derived from the one below it, so each is regenerated, not
restored by hand: the ANN file from the records database (`VectorStore.rebuild`), the records
database from the chunk and embedding tables, which the same ingest run has just rebuilt from the
source documents (cached embeddings make that cheap). An ingest therefore repairs any damage; a
snapshot is only needed when the sources are gone too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent_platform.knowledge.pipeline import IndexSummary, sync_index
from agent_platform.knowledge.tables import TenantTables
from agent_platform.vectorstore.base import IndexCorruptedError, VectorStore


@dataclass(frozen=True)
class Repair:
    """What a damaged index needed: `rebuilt` (new ANN from the intact records) or `reindexed`
    (damaged records dropped; every chunk indexed again from the tables)."""

    action: Literal["rebuilt", "reindexed"]
    problem: str


def repair_index(store: VectorStore, tenant: str, problem: str) -> Repair:
    """Rebuild the derived indexes from the records; if the records fail verification too, drop
    the tenant's index so the caller indexes every chunk again."""
    try:
        store.rebuild(tenant)
        store.verify(tenant)
    except IndexCorruptedError:
        store.drop_tenant(tenant)
        return Repair("reindexed", problem)
    return Repair("rebuilt", problem)


def sync_repairing(
    tenant: str, tables: TenantTables, store: VectorStore
) -> tuple[IndexSummary, Repair | None]:
    """`sync_index`, repairing the tenant's index first when opening or writing it finds damage.

    Writes are transactional, so a sync that stopped at the damage left nothing half-written.
    """
    try:
        return sync_index(tenant, tables, store), None
    except IndexCorruptedError as exc:
        repair = repair_index(store, tenant, str(exc))
    return sync_index(tenant, tables, store), repair
