"""`agent-platform ingest`, `search` and `index …`: the knowledge commands.

Output contract (kept stable for scripts):
- `ingest --json`: one object with source_dir (the directory the run read), documents_seen,
  documents_skipped [{path, reason}], chunks_total, chunks_embedded, chunks_reused, chunks_deleted,
  index_repaired ("none", "rebuilt": a damaged ANN file regenerated from the records,
  "reindexed": damaged records indexed again from the tenant's chunks).

Tenants: `ingest` registers a tenant (and refuses to re-point it to another directory without
`--change-source`); every other command here refuses a tenant that is not registered, as `run`
does, instead of creating an empty index for it.
- `search --json`: one line per query: {"query", "hits": [{"source", "chunk_id", "score", "text"}]}.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agent_platform.cli.execution import run_tenant_job
from agent_platform.progress import PROGRESS_BAR_ENV
from agent_platform.settings import get_settings
from agent_platform.tenants import (
    InvalidTenantNameError,
    SourceDirectoryConflictError,
    TenantRegistry,
    UnknownTenantError,
    validate_tenant_name,
)
from agent_platform.vectorstore.base import SearchHit, SearchMode, VectorStoreError

console = Console(stderr=True, soft_wrap=True)  # an error stays one line
index_app = typer.Typer(help="Back up, restore and verify tenants' vector indexes.")

TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant name (a-z, 0-9, - and _).")]


def _tenant(name: str) -> str:
    try:
        return validate_tenant_name(name)
    except InvalidTenantNameError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tenant") from exc


def _known_tenant(name: str) -> str:
    """A valid, registered tenant name; an unknown one is refused as `run` refuses it."""
    tenant = _tenant(name)
    try:
        return TenantRegistry(get_settings().tenant_registry_path).require(tenant)
    except UnknownTenantError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def ingest_summary(metadata: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The `ingest --json` object, read from the assets' materialization metadata."""
    docs = metadata.get("source_documents", {})
    return {
        "source_dir": docs.get("source_dir"),
        "documents_seen": docs.get("documents_seen", 0),
        "documents_skipped": docs.get("documents_skipped", []),
        "chunks_total": metadata.get("document_chunks", {}).get("chunks_total", 0),
        "chunks_embedded": metadata.get("embeddings", {}).get("chunks_embedded", 0),
        "chunks_reused": metadata.get("embeddings", {}).get("chunks_reused", 0),
        "chunks_deleted": metadata.get("vector_index", {}).get("chunks_deleted", 0),
        "index_repaired": metadata.get("vector_index", {}).get("repaired", "none"),
    }


def ingest(
    directory: Annotated[
        Path, typer.Argument(help="Directory of .md, .txt, .html and .pdf files.")
    ],
    tenant: TenantOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    change_source: Annotated[
        bool,
        typer.Option(
            "--change-source",
            help="Re-point a tenant registered with another directory to DIR (its index then "
            "holds DIR's documents only).",
        ),
    ] = False,
) -> None:
    """Register a tenant's source directory and materialize its knowledge assets.

    Ingests of one tenant run one at a time (a second waits for the first)."""
    from agent_platform.knowledge.ingest_lock import tenant_ingest_lock

    tenant = _tenant(tenant)
    if not directory.is_dir():
        raise typer.BadParameter(f"{directory} is not a directory", param_hint="DIR")
    settings = get_settings()
    registry = TenantRegistry(settings.tenant_registry_path)
    with tenant_ingest_lock(settings.home_dir, tenant, on_wait=console.print):
        try:
            source = registry.register(tenant, directory, change=change_source)
        except SourceDirectoryConflictError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        os.environ[PROGRESS_BAR_ENV] = "1"
        outcome = run_tenant_job(settings, "knowledge_job", tenant)
    summary = ingest_summary(outcome.metadata)
    if outcome.success and summary["source_dir"] != str(source):
        outcome.success = False  # the registry was re-pointed behind the lock's back
        outcome.failures.append(
            f"the run read {summary['source_dir']}, not {source}: another process re-pointed "
            f"tenant {tenant!r}; ingest again"
        )
    if as_json:
        typer.echo(json.dumps({**summary, "run_id": outcome.run_id, "success": outcome.success}))
    else:
        _print_ingest(tenant, summary, outcome.run_id)
    for failure in outcome.failures:
        console.print(f"[red]error:[/red] {failure}")
    if not outcome.success:
        raise typer.Exit(1)


def _print_ingest(tenant: str, summary: dict[str, Any], run_id: str) -> None:
    table = Table(title=f"Ingested tenant {tenant!r} (Dagster run {run_id[:8]})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key != "documents_skipped":
            table.add_row(key, str(value))
    table.add_row("documents_skipped", str(len(summary["documents_skipped"])))
    Console().print(table)
    _print_skipped(summary["documents_skipped"])


def _print_skipped(skipped: list[dict[str, Any]]) -> None:
    """One line per reason: a folder of images is one line, not one per picture."""
    by_reason: dict[str, list[str]] = {}
    for item in skipped:
        by_reason.setdefault(item["reason"], []).append(str(item["path"]))
    for reason, paths in by_reason.items():
        if len(paths) == 1:
            console.print(f"[yellow]skipped[/yellow] {paths[0]}: {reason}")
            continue
        sample = ", ".join(paths[:3]) + (", …" if len(paths) > 3 else "")
        console.print(f"[yellow]skipped[/yellow] {len(paths)} files ({sample}): {reason}")


def hit_json(hit: SearchHit) -> dict[str, Any]:
    return {
        "source": hit.source,
        "chunk_id": hit.chunk_id,
        "score": round(float(hit.score), 6),
        "text": hit.text,
    }


def _read_queries(path: Path) -> list[str]:
    queries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"{path}:{number}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("query"), str):
            raise typer.BadParameter(f"{path}:{number}: needs a string field 'query'")
        queries.append(record["query"])
    return queries


def search(
    tenant: TenantOption,
    query: Annotated[str | None, typer.Argument(help="The query text.")] = None,
    queries_file: Annotated[
        Path | None,
        typer.Option(
            "--queries-file",
            help="JSON Lines with a 'query' field.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=1000)] = 5,
    mode: Annotated[SearchMode, typer.Option("--mode")] = SearchMode.HYBRID,
    min_score: Annotated[float | None, typer.Option("--min-score", min=0.0, max=1.0)] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option("--filter", help="KEY=VALUE equality on source or metadata; repeatable."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per query.")] = False,
) -> None:
    """Search a tenant's index (vector, keyword or hybrid)."""
    from agent_platform.knowledge.service import KnowledgeBase

    tenant = _tenant(tenant)
    if (query is None) == (queries_file is None):
        raise typer.BadParameter("give exactly one of QUERY or --queries-file")
    queries = [query] if query is not None else _read_queries(queries_file)  # type: ignore[arg-type]
    equality = _parse_filters(filters or [])
    _known_tenant(tenant)  # after the usage checks, which exit 2
    kb = KnowledgeBase(get_settings())
    try:
        for text in queries:
            hits = kb.search(
                tenant, text, k=k, mode=mode, min_score=min_score, filters=equality or None
            )
            if as_json:
                typer.echo(json.dumps({"query": text, "hits": [hit_json(h) for h in hits]}))
            else:
                _print_hits(text, hits)
    except (VectorStoreError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    finally:
        kb.close()


def _parse_filters(items: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--filter")
        parsed[key.strip()] = value
    return parsed


def _print_hits(query: str, hits: list[SearchHit]) -> None:
    table = Table(title=f"{query}", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("source")
    table.add_column("text")
    for rank, hit in enumerate(hits, start=1):
        text = " ".join(hit.text.split())
        snippet = text if len(text) < 240 else text[:237] + "..."
        table.add_row(str(rank), f"{hit.score:.3f}", hit.source, snippet)
    Console().print(table)


@index_app.command("backup")
def backup(tenant: TenantOption) -> None:
    """Snapshot a tenant's index now (the daily schedule runs the same job)."""
    tenant = _known_tenant(tenant)
    outcome = run_tenant_job(get_settings(), "index_backup_job", tenant)
    if not outcome.success:
        for failure in outcome.failures:
            console.print(f"[red]error:[/red] {failure}")
        raise typer.Exit(1)
    meta = outcome.metadata.get("index_snapshot", {})
    typer.echo(
        json.dumps(
            {
                k: meta.get(k)
                for k in ("snapshot_id", "location", "chunk_count", "text_encrypted", "pruned")
            }
        )
    )


@index_app.command("rebuild")
def rebuild(tenant: TenantOption) -> None:
    """Rebuild a tenant's index from stored vectors now (the weekly reindex job)."""
    tenant = _known_tenant(tenant)
    outcome = run_tenant_job(
        get_settings(),
        "reindex_job",
        tenant,
        run_config={"ops": {"vector_index": {"config": {"rebuild": True}}}},
    )
    for failure in outcome.failures:
        console.print(f"[red]error:[/red] {failure}")
    if not outcome.success:
        raise typer.Exit(1)
    meta = outcome.metadata.get("vector_index", {})
    typer.echo(
        json.dumps(
            {
                "tenant": tenant,
                "rebuilt": meta.get("rebuilt"),
                "chunks_total": meta.get("chunks_total"),
            }
        )
    )


@index_app.command("snapshots")
def snapshots(tenant: TenantOption) -> None:
    """List a tenant's snapshots, newest last."""
    from agent_platform.knowledge.service import KnowledgeBase

    settings = get_settings()
    kb = KnowledgeBase(settings)
    try:
        for snap in kb.store.list_snapshots(_tenant(tenant), settings.snapshots_dir):
            typer.echo(json.dumps(snap.__dict__))
    finally:
        kb.close()


@index_app.command("restore")
def restore(
    tenant: TenantOption,
    snapshot: Annotated[
        str, typer.Option("--snapshot", help="Snapshot id (see `index snapshots`).")
    ],
) -> None:
    """Bring a tenant's index back from a snapshot (checksums are verified first)."""
    from agent_platform.cli.auth import authorize_cli
    from agent_platform.knowledge.service import KnowledgeBase
    from agent_platform.security.crypto import EncryptionError, value_cipher

    # The policy decides first, so a caller without the permission cannot probe which tenants exist.
    authorize_cli("index.restore", f"index:{tenant}@{snapshot}", tenant=tenant)
    tenant = _known_tenant(tenant)

    settings = get_settings()
    try:
        cipher = value_cipher(settings)  # a missing or wrong key stops here, nothing touched
    except EncryptionError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    kb = KnowledgeBase(settings)
    try:
        info = kb.store.restore(tenant, settings.snapshots_dir, snapshot, cipher)
    except (VectorStoreError, EncryptionError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    finally:
        kb.close()
    typer.echo(json.dumps({"restored": info.snapshot_id, "chunk_count": info.chunk_count}))


@index_app.command("verify")
def verify(tenant: TenantOption) -> None:
    """Check a tenant's index for corruption; prints the restore command if it is damaged."""
    from agent_platform.knowledge.service import KnowledgeBase

    tenant = _known_tenant(tenant)
    kb = KnowledgeBase(get_settings())
    try:
        kb.store.verify(tenant)
    except VectorStoreError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    finally:
        kb.close()
    typer.echo(json.dumps({"tenant": tenant, "ok": True}))
