"""`agent-platform readiness [--json]` prints the champion's readiness report and exits 1 when it
is not ready; `agent-platform readiness signoff ITEM` records a manual sign-off by the signed-in
identity (its verified subject and the roles the policy granted)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from agent_platform.evaluation import load_plan
from agent_platform.model_registry import AgentModelRegistry
from agent_platform.readiness import (
    MANUAL_ITEMS,
    SignoffError,
    SignoffStore,
    build_report,
    write_report,
)
from agent_platform.settings import get_settings

readiness_app = typer.Typer(
    help="Production readiness of the champion (checklist, tools, sign-offs).",
    invoke_without_command=True,
)


@readiness_app.callback()
def readiness_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    no_tools: Annotated[
        bool, typer.Option("--no-tools", help="Skip bandit and pip-audit.")
    ] = False,
) -> None:
    """Evaluate the checklist, write the report (Markdown, HTML, MLflow) and print it."""
    if ctx.invoked_subcommand is not None:
        return
    settings = get_settings()
    registry = AgentModelRegistry.from_settings(settings)
    report = build_report(settings, load_plan(), registry, run_tools=not no_tools)
    report = write_report(report, settings, registry)
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        typer.echo(report.markdown())
        typer.echo(f"HTML report: {report.paths['html']} (MLflow run {report.mlflow_run_id})")
    if not report.ready:
        raise typer.Exit(1)


@readiness_app.command("signoff")
def signoff(
    item: Annotated[str, typer.Argument(help=f"One of: {', '.join(MANUAL_ITEMS)}")],
    note: Annotated[str, typer.Option(help="Evidence or a link.")] = "",
) -> None:
    """Record a manual sign-off of a checklist item as the signed-in identity (AGENT_PLATFORM_TOKEN
    or `agent-platform login`; `--as NAME` in the local profile, recorded as unverified)."""
    from agent_platform.cli.auth import audit_done, authorize_cli

    identity, decision = authorize_cli("readiness.signoff", f"readiness:{item}")
    try:
        recorded = SignoffStore.under(get_settings().home_dir).sign(
            item, by=identity.actor, note=note, verified=identity.verified, roles=decision.roles
        )
    except SignoffError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    audit_done(
        identity, "readiness.signoff", "readiness.signoff", f"readiness:{item}",
        granted_roles=list(recorded.roles), verified=recorded.verified,
    )  # fmt: skip
    how = f"verified, granted by {', '.join(recorded.roles)}" if recorded.verified else "unverified"
    typer.echo(f"{recorded.item} signed off by {recorded.by} ({how}) at {recorded.at}")
