"""`agent-platform`: the command line over the same assets the Dagster UI materializes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from agent_platform.cli import knowledge
from agent_platform.cli.audit import audit_app
from agent_platform.cli.auth import auth_app, login, logout
from agent_platform.cli.deploy import deploy_app
from agent_platform.cli.errors import DEBUG_ENV, ErrorReportingGroup, configure_logging
from agent_platform.cli.keys import keys_app
from agent_platform.cli.models import models_app
from agent_platform.cli.prompts import prompts_app
from agent_platform.cli.readiness import readiness_app
from agent_platform.cli.run import run_command, runtime_app
from agent_platform.cli.serve import serve
from agent_platform.cli.worker import worker
from agent_platform.dagster_home import ensure_dagster_home
from agent_platform.settings import get_settings

if TYPE_CHECKING:
    from agent_platform.cli.execution import JobOutcome
    from agent_platform.settings import Settings

app = typer.Typer(
    help="agent-platform: knowledge bases, prompts and agent versions as Dagster assets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=ErrorReportingGroup,  # every failure: one line on stderr and an exit status
)
config_app = typer.Typer(help="Show the resolved configuration.")
app.add_typer(config_app, name="config")
app.add_typer(knowledge.index_app, name="index")
app.add_typer(prompts_app, name="prompts")
app.add_typer(models_app, name="models")
app.add_typer(readiness_app, name="readiness")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(auth_app, name="auth")
app.add_typer(deploy_app, name="deploy")
app.command("run")(run_command)
app.add_typer(runtime_app, name="runtime")
app.command("ingest")(knowledge.ingest)
app.command("search")(knowledge.search)
app.command("serve")(serve)
app.command("login")(login)
app.command("logout")(logout)
app.command("worker")(worker)


console = Console()
SAMPLE_TENANT = "sample"
DEMO_QUESTION = "How do I restore an index snapshot?"
DEMO_QUERIES = (
    "How do I switch from the embedded default to production?",
    "What happens to a corrupted index?",
    "Which fusion does hybrid search use?",
)


@app.callback()
def main(
    ctx: typer.Context,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar=DEBUG_ENV,
            help="Show the traceback of an error and the library's log records.",
        ),
    ] = False,
    as_name: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Development identity for operator commands (local profile only, recorded as "
            "unverified); otherwise AGENT_PLATFORM_TOKEN.",
        ),
    ] = None,
) -> None:
    """agent-platform: knowledge bases, prompts and agent versions as Dagster assets.

    Who runs an operator command: AGENT_PLATFORM_TOKEN, or `--as NAME` in the local profile."""
    configure_logging(ctx, debug)
    if as_name:
        previous = os.environ.get("AGENT_PLATFORM_AS")
        os.environ["AGENT_PLATFORM_AS"] = as_name

        def restore() -> None:  # an in-process caller (tests, scripts) keeps its environment
            if previous is None:
                os.environ.pop("AGENT_PLATFORM_AS", None)
            else:
                os.environ["AGENT_PLATFORM_AS"] = previous

        ctx.call_on_close(restore)


@config_app.command("show")
def config_show(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print the resolved settings: profile, paths and service URIs (secrets redacted)."""
    described = get_settings().describe()
    if as_json:
        typer.echo(json.dumps(described, indent=2))
        return
    for key, value in described.items():
        console.print(f"[bold]{key}[/bold]: {value}")


@config_app.command("dagster-home")
def config_dagster_home() -> None:
    """Create DAGSTER_HOME with the profile's dagster.yaml and print its path."""
    typer.echo(str(ensure_dagster_home(get_settings())))


def sample_docs_dir() -> Path:
    """The project's own documentation, shipped as the sample tenant's knowledge base."""
    return Path(__file__).resolve().parents[2] / "docs"


def _ask(settings: Settings, question: str) -> None:
    from agent_platform.runtime import AgentRuntime

    runtime = AgentRuntime.from_settings(settings)
    try:
        response = runtime.run(tenant=SAMPLE_TENANT, user="demo", input=question)
    finally:
        runtime.close()
    console.print(f"[bold]Q:[/bold] {question}\n[bold]A:[/bold] {response.answer}")
    for citation in response.citations:
        console.print(
            f"   cites {citation.source} (chunk {citation.chunk_id[:8]}, {citation.score:.2f})"
        )
    console.print(
        f"model {response.model}, prompt {response.prompt.name} v{response.prompt.version}, "
        f"{response.latency_ms.get('total', 0):.0f} ms, trace {response.trace_id}"
    )


def _fail_on(outcome: JobOutcome) -> None:
    for failure in outcome.failures:
        console.print(f"[red]error:[/red] {failure}")
    if not outcome.success:
        raise typer.Exit(1)


@app.command("demo")
def demo(
    source: Annotated[Path | None, typer.Option(help="Documents for the sample tenant.")] = None,
) -> None:
    """Materialize the whole asset graph for the sample tenant and show the result."""
    from agent_platform.cli.execution import run_job, run_tenant_job
    from agent_platform.cli.models import demo_evaluation_steps

    settings = get_settings()
    source = source or sample_docs_dir()
    console.rule("[bold]1. Knowledge: documents → chunks → embeddings → index")
    # The sample tenant belongs to the demo: it follows `--source` (or the shipped docs).
    knowledge.ingest(directory=source, tenant=SAMPLE_TENANT, as_json=False, change_source=True)
    console.rule("[bold]2. Prompts: validate, test and register in MLflow")
    prompts = run_job(settings, "prompts_job")
    for key, meta in sorted(prompts.metadata.items()):
        if key.startswith("prompts/") and key.endswith("_version"):
            console.print(
                f"{key.removeprefix('prompts/').removesuffix('_version')}: "
                f"v{meta['mlflow_version']} "
                f"({meta['semver']}), aliases {meta['aliases']}"
            )
    _fail_on(prompts)
    console.rule("[bold]3. Search the sample tenant (hybrid: vector + BM25, fused by RRF)")
    for query in DEMO_QUERIES:
        knowledge.search(tenant=SAMPLE_TENANT, query=query, k=3)
    console.rule("[bold]4. Snapshot the index (the daily backup job)")
    outcome = run_tenant_job(settings, "index_backup_job", SAMPLE_TENANT)
    snapshot = outcome.metadata.get("index_snapshot", {})
    console.print(f"snapshot {snapshot.get('snapshot_id')} at {snapshot.get('location')}")
    _fail_on(outcome)
    console.rule("[bold]5. Ask the agent (the serving runtime, no Dagster involved)")
    _ask(settings, DEMO_QUESTION)
    demo_evaluation_steps(console)
    console.rule("[bold]Where to look")
    console.print(
        f"State lives in {settings.home_dir}.\n"
        "Open the Dagster UI over the same state with [bold]make ui[/bold] "
        "(dagster dev -w workspace.yaml) and browse to http://127.0.0.1:3000: "
        f"Assets → knowledge (partition '{SAMPLE_TENANT}') and prompts.\n"
        f"MLflow UI: mlflow ui --backend-store-uri {settings.resolved_mlflow_tracking_uri} "
        f"--default-artifact-root {settings.resolved_mlflow_artifact_root} → Prompts."
    )


if __name__ == "__main__":
    app()
