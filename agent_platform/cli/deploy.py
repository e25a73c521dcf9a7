"""`agent-platform deploy …`: blue/green rollout of an agent version.

    agent-platform deploy VERSION            # preparation + first traffic step (Dagster job)
    agent-platform deploy approve VERSION --role release_manager
    agent-platform deploy status [--json]
    agent-platform deploy watch              # tick the controller here (no Dagster daemon)
    agent-platform deploy rollback --reason "…"

The Dagster sensor `rollout_controller` advances or rolls back a rollout every
`delivery.tick_interval_s`; `watch` does the same in the terminal for a setup without the daemon.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from agent_platform.cli.auth import authorize_cli
from agent_platform.settings import get_settings

if TYPE_CHECKING:
    from agent_platform.delivery.controller import RolloutController


class _VersionFirst(TyperGroup):
    """`deploy 7` means `deploy start 7`: a version number is not a sub-command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's private click
        if args and args[0].isdigit():
            args = ["start", *args]
        return super().parse_args(ctx, args)


deploy_app = typer.Typer(
    help="Blue/green rollout of agent versions with automatic rollback.",
    no_args_is_help=True,
    cls=_VersionFirst,
)
AgentOpt = Annotated[
    str | None, typer.Option("--agent", help="Registered agent (default: the serving agent).")
]


def _controller() -> RolloutController:
    from agent_platform.delivery.controller import RolloutController

    return RolloutController(get_settings())


def _agent(agent: str | None) -> str:
    return agent or get_settings().serving_agent


@deploy_app.command("start")
def start(
    version: Annotated[int, typer.Argument(help="The model version to deploy (green).")],
    agent: AgentOpt = None,
) -> None:
    """Run `deploy_agent_version`: preparation checks, then green beside blue at the first
    traffic step. Refused (nothing shifted) when a check fails."""
    from agent_platform.cli.execution import run_job

    name = _agent(agent)
    identity, _ = authorize_cli("deploy", f"model:{name}@{version}")
    config = {
        "version": version,
        "agent": name,
        "actor": identity.subject,
        "verified": identity.verified,
    }
    outcome = run_job(
        get_settings(),
        "deploy_agent_version",
        run_config={"ops": {"agent_rollout": {"config": config}}},
    )
    for failure in outcome.failures:
        typer.echo(f"error: {failure}", err=True)
    _print_latest(name)
    if not outcome.success:
        raise typer.Exit(1)


@deploy_app.command("approve")
def approve(
    version: Annotated[int, typer.Argument()],
    role: Annotated[str, typer.Option(help="release_manager, operations_lead, …")],
    agent: AgentOpt = None,
) -> None:
    """Approve VERSION for deployment in ROLE, as the operator's identity (one role each)."""
    name = _agent(agent)
    identity, _ = authorize_cli("deploy", f"model:{name}@{version}")
    _controller().approve(version, role=role, actor=identity.as_record(), agent=name)
    verified = "verified" if identity.verified else "unverified development identity"
    typer.echo(f"{name} v{version}: approved as {role} by {identity.display_name} ({verified})")


@deploy_app.command("status")
def status(
    agent: AgentOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Where the newest rollout stands: stage, traffic on green, checks and decisions."""
    _print_latest(_agent(agent), as_json=as_json)


@deploy_app.command("rollback")
def rollback(
    agent: AgentOpt = None,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "manual rollback",
) -> None:
    """Send all traffic back to blue now and restore the champion alias."""
    name = _agent(agent)
    identity, _ = authorize_cli("deploy", f"model:{name}")
    rollout = _controller().rollback(reason=reason, actor=identity.as_record(), agent=name)
    typer.echo(rollout.summary())


@deploy_app.command("watch")
def watch(
    agent: AgentOpt = None,
    every: Annotated[float, typer.Option(help="Seconds between ticks.")] = 15.0,
) -> None:
    """Tick the controller until the rollout completes or rolls back (what the sensor does)."""
    controller, name = _controller(), _agent(agent)
    while True:
        outcome = controller.tick(name)
        if outcome is None:
            _print_latest(name)
            return
        typer.echo(f"{outcome.rollout.summary()}: {outcome.decision.reason}")
        if not outcome.rollout.active:
            return
        time.sleep(every)


def _print_latest(agent: str, *, as_json: bool = False) -> None:
    from agent_platform.delivery.state import dumps, open_rollout_store

    rollout = open_rollout_store(get_settings()).latest(agent)
    if rollout is None:
        typer.echo(f"{agent}: no rollout yet (`agent-platform deploy VERSION`)")
        return
    if as_json:
        typer.echo(dumps(rollout))
        return
    typer.echo(rollout.summary())
    for check in rollout.checks:
        typer.echo(f"  {check['status']:>12}  {check['name']}: {check['detail']}")
    for event in rollout.events[-8:]:
        at = time.strftime("%H:%M:%S", time.localtime(event["at"]))
        health = f" [{event['health']}]" if event.get("health") else ""
        typer.echo(f"  {at} {event['event']}: {event['outcome']} at {event['weight']}%{health}")
