"""`agent-platform models …`: list, evaluate, compare, promote and roll back agent model versions.

Output contract: `list --json` prints one object per version (name, version, aliases, candidate,
evaluated, gates_passed, metrics, lineage, created_at, run_id, config). Errors print
`error: …` on stderr and exit with status 1.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from agent_platform.cli.auth import authorize_cli
from agent_platform.evaluation import ComparisonError, load_plan, paired_bootstrap
from agent_platform.model_registry import AgentModelRegistry, ModelRegistryError, as_json
from agent_platform.settings import get_settings

models_app = typer.Typer(help="Evaluated agent model versions in MLflow.", no_args_is_help=True)
AgentArg = Annotated[str | None, typer.Argument(help="Registered agent (default: the plan's).")]


def _registry() -> AgentModelRegistry:
    return AgentModelRegistry.from_settings(get_settings())


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@models_app.command("list")
def list_versions(
    agent: AgentArg = None, as_json_: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Every version of the agent with its aliases, gate verdict and headline metrics."""
    name = agent or load_plan().agent
    versions = _registry().versions(name)
    if as_json_:
        typer.echo(json.dumps([as_json(v) for v in versions], indent=2))
        return
    if not versions:
        typer.echo(f"no versions of {name!r} yet (run `agent-platform models evaluate`)")
    for v in versions:
        m = v.metrics
        gates = {True: "gates pass", False: "gates FAIL", None: "not evaluated"}[v.gates_passed]
        numbers = f" accuracy {m['accuracy']:.3f} p95 {m['latency_p95_ms']:.0f} ms" if m else ""
        # a version registered outside an evaluation has no candidate to name
        candidate = f" {v.candidate}" if v.candidate else ""
        aliases = ", ".join(v.aliases) or "-"
        typer.echo(f"{name} v{v.version} [{aliases}]{candidate}: {gates}{numbers}")


@models_app.command("evaluate")
def evaluate_command(
    candidates: Annotated[
        list[str] | None, typer.Argument(help="Plan candidates (default: all).")
    ] = None,
    max_examples: Annotated[int | None, typer.Option(help="Cap examples per candidate.")] = None,
) -> None:
    """Run the Dagster evaluation job (dataset → evaluation → gates → promotion) in process."""
    from agent_platform.cli.execution import run_job

    config = {"candidates": list(candidates or []), "max_examples": max_examples}
    outcome = run_job(
        get_settings(),
        "evaluation_job",
        run_config={"ops": {"evaluated_model_versions": {"config": config}}},
    )
    evaluated = outcome.metadata.get("evaluated_model_versions", {})
    for table in (evaluated.get("candidates"), evaluated.get("ab_comparison")):
        if table:  # a run that failed before evaluating has none: no blank lines
            typer.echo(table)
    promotion = outcome.metadata.get("champion_promotion", {})
    if promotion:
        typer.echo(f"promoted: {promotion.get('promoted')} ({promotion.get('reason')})")
    for failure in outcome.failures:
        typer.echo(f"error: {failure}", err=True)
    if not outcome.success:
        raise typer.Exit(1)


@models_app.command("promote")
def promote(
    version: Annotated[int, typer.Argument()],
    agent: Annotated[
        str | None, typer.Option(help="Registered agent (default: the plan's).")
    ] = None,
    reason: Annotated[str, typer.Option()] = "",
) -> None:
    """Move `champion` to VERSION; refused unless it was evaluated and passed every gate. The
    release record names the operator's identity (token, `login`, or locally `--as`)."""
    name = agent or load_plan().agent
    identity, _ = authorize_cli("models.promote", f"model:{name}@{version}")
    try:
        event = _registry().promote(name, version, by=identity.actor, reason=reason)
    except ModelRegistryError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{name}: {event.describe()}")


@models_app.command("rollback")
def rollback(
    agent: AgentArg = None,
    to: Annotated[
        int | None, typer.Option(help="A version that served as champion before.")
    ] = None,
    reason: Annotated[str, typer.Option()] = "",
) -> None:
    """Move `champion` back to the version it replaced (or to --to)."""
    name = agent or load_plan().agent
    identity, _ = authorize_cli("models.rollback", f"model:{name}")
    try:
        event = _registry().rollback(name, by=identity.actor, to=to, reason=reason)
    except ModelRegistryError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{name}: {event.describe()}")


@models_app.command("history")
def history(agent: AgentArg = None) -> None:
    """The audit log: every promotion, rollback and challenger change, with who and when."""
    name = agent or load_plan().agent
    try:
        events = _registry().history(name)
    except ModelRegistryError as exc:
        raise _fail(exc) from exc
    for event in events:
        typer.echo(event.describe())


@models_app.command("compare")
def compare(
    challenger: Annotated[int, typer.Argument()],
    champion: Annotated[int | None, typer.Argument(help="Default: the current champion.")] = None,
    agent: Annotated[str | None, typer.Option()] = None,
    metric: Annotated[
        str, typer.Option(help="Per-example score: correct, groundedness, …")
    ] = "correct",
) -> None:
    """Paired bootstrap of CHALLENGER against CHAMPION on their shared evaluated examples."""
    from agent_platform.evaluation import EvaluationService

    name = agent or load_plan().agent
    registry = _registry()
    try:
        first = registry.get(name, challenger)
        second = registry.get(name, champion if champion is not None else "champion")
        service = EvaluationService(get_settings(), registry=registry)
        scores = []
        for version in (first, second):
            run_id = version.tags.get("eval.run_id")
            if not run_id:
                raise ModelRegistryError(f"agent {name!r} v{version.version} has no evaluation")
            table = service.examples_of(run_id)
            scores.append(dict(zip(table["example_id"], table[metric].astype(float), strict=True)))
        result = paired_bootstrap(scores[0], scores[1], metric=metric)
    except (ModelRegistryError, ComparisonError, KeyError) as exc:
        raise _fail(exc) from exc
    typer.echo(f"v{first.version} vs v{second.version}: {result.summary()}")


def demo_evaluation_steps(console: object) -> bool:
    """The demo's last steps: evaluate both candidates, promote the better one if it passes the
    gates, and write the readiness report. Returns whether the champion is ready.
    """
    from agent_platform.cli.execution import run_job

    settings = get_settings()
    say = getattr(console, "print", print)
    rule = getattr(console, "rule", say)
    rule("[bold]6. Evaluate the agent configurations (extractive: all 58 questions; Gemma: 6)")
    evaluation = run_job(settings, "evaluation_job")
    evaluated = evaluation.metadata.get("evaluated_model_versions", {})
    say(evaluated.get("candidates", ""))
    say(evaluated.get("ab_comparison", ""))
    promotion = evaluation.metadata.get("champion_promotion", {})
    say(f"promotion: {promotion.get('decision', 'not decided (see the run in the Dagster UI)')}")
    for failure in evaluation.failures:
        say(f"  {failure}")
    rule("[bold]7. Quality check of the serving champion (the daily gate)")
    quality = run_job(settings, "quality_gate_job")
    checked = quality.metadata.get("champion_quality", {})
    say(checked.get("decision", "no decision (see the run in the Dagster UI)"))
    for failure in quality.failures:
        say(f"  {failure}")
    rule("[bold]8. Production-readiness report")
    readiness = run_job(settings, "readiness_job")
    report = readiness.metadata.get("readiness_report", {})
    say(f"ready: {report.get('ready')}, open items: {report.get('open_items')}")
    say(
        f"report: {report.get('html')} (also an MLflow artifact, run {report.get('mlflow_run_id')})"
    )
    say(
        "Dagster UI (make ui): Assets → evaluation (evaluated_model_versions, its gate checks, "
        "champion_promotion, readiness_report). MLflow UI: `mlflow ui --backend-store-uri "
        f"{settings.resolved_mlflow_tracking_uri} --default-artifact-root "
        f"{settings.resolved_mlflow_artifact_root}` → Experiments → agent-platform/agents/"
        "grounded-qa → Agent versions and Evaluation runs, and Models → grounded-qa (aliases "
        "champion/challenger)."
    )
    return bool(report.get("ready"))
