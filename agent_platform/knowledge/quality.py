"""Quality checks on the knowledge tables and the index; the Dagster asset checks call these.

Each returns a `CheckOutcome` (passed, a one-line summary and numbers) so that the same checks can
run from Dagster, the CLI or a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandera.errors

from agent_platform.knowledge.chunking import ChunkTableSchema
from agent_platform.knowledge.pipeline import vectors_to_numpy
from agent_platform.knowledge.tables import TenantTables
from agent_platform.vectorstore.base import SearchMode, VectorStore

UNIT_NORM_TOLERANCE = 1e-3
MIN_ANN_RECALL = 0.95


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    summary: str
    metrics: dict[str, float | int | str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def check_chunk_schema(tables: TenantTables, max_tokens: int) -> CheckOutcome:
    """Pandera schema per batch, plus id uniqueness and token limit across the whole table."""
    failures: list[str] = []
    seen: set[str] = set()
    rows = 0
    for batch in tables.iter_batches("chunks", batch_size=8192):
        frame = batch.to_pandas()
        rows += len(frame)
        try:
            ChunkTableSchema.validate(frame, lazy=True)
        except pandera.errors.SchemaErrors as exc:
            cases = exc.failure_cases.head(10)
            failures.extend(
                f"{case.column}: {case.check} failed for {str(case.failure_case)[:60]!r}"
                for case in cases.itertuples()
            )
        over = frame[frame["n_tokens"] > max_tokens]
        failures.extend(
            f"chunk {cid} has {n} tokens (limit {max_tokens})"
            for cid, n in zip(over["chunk_id"].head(5), over["n_tokens"].head(5), strict=True)
        )
        duplicates = seen.intersection(frame["chunk_id"])
        failures.extend(f"duplicate chunk id {cid}" for cid in sorted(duplicates)[:5])
        seen.update(frame["chunk_id"])
    return CheckOutcome(
        passed=not failures,
        summary=f"{rows} chunks; {len(failures)} problem(s)",
        metrics={"rows": rows},
        failures=failures[:20],
    )


def check_embeddings(tables: TenantTables, expected_dimension: int) -> CheckOutcome:
    """Every vector has the model's dimension, finite values and unit norm."""
    dimension = tables.schema("embeddings").field("vector").type.list_size
    rows = non_finite = not_unit = 0
    worst = 0.0
    for batch in tables.iter_batches("embeddings", ["vector"], batch_size=8192):
        vectors = vectors_to_numpy(batch.column("vector"))
        rows += len(vectors)
        finite = np.isfinite(vectors).all(axis=1)
        non_finite += int((~finite).sum())
        deviation = np.abs(np.linalg.norm(vectors[finite], axis=1) - 1.0)
        not_unit += int((deviation > UNIT_NORM_TOLERANCE).sum())
        if deviation.size:
            worst = max(worst, float(deviation.max()))
    failures = []
    if dimension != expected_dimension:
        failures.append(f"dimension {dimension}, expected {expected_dimension}")
    if non_finite:
        failures.append(f"{non_finite} vector(s) with NaN or infinite values")
    if not_unit:
        failures.append(f"{not_unit} vector(s) not unit norm (tolerance {UNIT_NORM_TOLERANCE})")
    if rows != tables.num_rows("chunks"):
        failures.append(f"{rows} vectors for {tables.num_rows('chunks')} chunks")
    return CheckOutcome(
        passed=not failures,
        summary="; ".join(failures) or f"{rows} vectors of dimension {dimension}, all unit norm",
        metrics={
            "rows": rows,
            "dimension": dimension,
            "non_finite": non_finite,
            "not_unit_norm": not_unit,
            "max_norm_deviation": round(worst, 6),
        },
        failures=failures,
    )


def check_index_count(store: VectorStore, tenant: str, tables: TenantTables) -> CheckOutcome:
    indexed, chunks = store.count(tenant), tables.num_rows("chunks")
    return CheckOutcome(
        passed=indexed == chunks,
        summary=f"index holds {indexed} chunks; the chunk table has {chunks}",
        metrics={"indexed": indexed, "chunks": chunks},
    )


def check_ann_recall(
    store: VectorStore,
    tenant: str,
    tables: TenantTables,
    sample_size: int = 100,
    k: int = 10,
    seed: int = 0,
    threshold: float = MIN_ANN_RECALL,
) -> CheckOutcome:
    """Recall@k of ANN search against exact search, with perturbed stored vectors as queries."""
    rng = np.random.default_rng(seed)
    total = tables.num_rows("embeddings")
    if total == 0:
        return CheckOutcome(True, "no vectors to sample", {"recall_at_k": 1.0, "sample": 0})
    wanted = set(rng.choice(total, size=min(sample_size, total), replace=False).tolist())
    queries: list[np.ndarray] = []
    offset = 0
    for batch in tables.iter_batches("embeddings", ["vector"], batch_size=8192):
        vectors = vectors_to_numpy(batch.column("vector"))
        queries.extend(
            vectors[i - offset] for i in sorted(wanted) if offset <= i < offset + len(vectors)
        )
        offset += len(vectors)
    hits = possible = 0
    for query in queries:
        noisy = query + rng.normal(0, 0.05, size=query.shape).astype(np.float32)
        noisy /= np.linalg.norm(noisy)
        exact = {h.chunk_id for h in store.exact_search(tenant, noisy, k=k)}
        ann = store.search(
            tenant, query_text="recall probe", query_vector=noisy, k=k, mode=SearchMode.VECTOR
        )
        hits += len(exact.intersection(h.chunk_id for h in ann))
        possible += len(exact)
    recall = hits / possible if possible else 1.0
    return CheckOutcome(
        passed=recall >= threshold,
        summary=f"recall@{k} = {recall:.3f} on {len(queries)} queries (threshold {threshold})",
        metrics={"recall_at_k": round(recall, 4), "k": k, "sample": len(queries)},
    )
