"""`agent-platform audit`: check the hash chain and read the newest records."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agent_platform.audit import open_audit_log
from agent_platform.settings import get_settings

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
console = Console()


@audit_app.command("verify")
def verify() -> None:
    """Walk the hash chain; name every modified, deleted, inserted or reordered record."""
    log = open_audit_log(get_settings())
    result = log.verify()
    if result.ok:
        typer.echo(f"audit log ok: {result.records} records, chain intact")
        return
    for problem in result.problems:
        typer.echo(f"audit log: {problem}", err=True)
    typer.echo(
        f"audit log broken: {len(result.problems)} problem(s) in {result.records} records",
        err=True,
    )
    raise typer.Exit(1)


@audit_app.command("tail")
def tail(
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, max=10_000)] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show the newest records, oldest first."""
    records = open_audit_log(get_settings()).tail(limit)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in records], indent=2))
        return
    table = Table("seq", "at", "kind", "actor", "action", "tenant", "outcome")
    for r in records:
        actor = str(r.actor.get("username") or r.actor.get("subject") or "?")
        if not r.actor.get("verified", True):
            actor += " (unverified)"
        table.add_row(str(r.seq), r.at, r.kind, actor, r.action, r.tenant or "", r.outcome)
    console.print(table)
