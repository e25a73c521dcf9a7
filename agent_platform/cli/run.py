"""`agent-platform run` (ask the agent) and `agent-platform runtime …` (graph, history, rollback).

Mount in `cli/main.py`::

    from agent_platform.cli.run import run_command, runtime_app
    app.command("run")(run_command)
    app.add_typer(runtime_app, name="runtime")

Exit status: 0 answered (or refused: the answer says so), 1 the request failed (the error, its
trace id and session are printed on one stderr line), 2 the request was invalid (the field is
named).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from agent_platform.cli.errors import one_line

if TYPE_CHECKING:
    from agent_platform.runtime.agent import AgentRuntime

runtime_app = typer.Typer(
    help="The agent runtime: its workflow graph and versioned conversation state.",
    no_args_is_help=True,
)

TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant whose knowledge answers.")]
UserOption = Annotated[str, typer.Option("--user", help="Who asks (rate limits, memory, A/B).")]


def _runtime() -> AgentRuntime:
    from agent_platform.runtime.agent import AgentRuntime
    from agent_platform.security.crypto import EncryptionError
    from agent_platform.settings import get_settings

    try:
        return AgentRuntime.from_settings(get_settings())
    except EncryptionError as exc:  # a missing or wrong key: one line, nothing read or written
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _fail(exc: Exception) -> None:
    from agent_platform.runtime.errors import AgentRunError, RequestValidationError

    ids = ""
    if isinstance(exc, AgentRunError) and exc.trace_id:
        ids = f" (trace_id: {exc.trace_id}, session_id: {exc.session_id})"
    typer.echo(f"error: {one_line(str(exc))}{ids}", err=True)  # one line, like every CLI error
    raise typer.Exit(2 if isinstance(exc, RequestValidationError) else 1)


def run_command(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    tenant: TenantOption,
    user: UserOption,
    session: Annotated[
        str | None, typer.Option("--session", help="Continue this session (default: a new one).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the full response as JSON.")
    ] = False,
) -> None:
    """Answer a question from the tenant's knowledge base, with citations."""
    from agent_platform.runtime.errors import AgentRunError
    from agent_platform.runtime.rate_limit import RateLimitExceeded
    from agent_platform.security.crypto import EncryptionError

    runtime = _runtime()
    try:
        response = runtime.run(tenant=tenant, user=user, input=question, session_id=session)
    except (AgentRunError, RateLimitExceeded, EncryptionError) as exc:
        _fail(exc)
        return
    finally:
        runtime.close()
    if as_json:
        typer.echo(json.dumps(response.model_dump(mode="json"), indent=2))
        return
    typer.echo(response.answer)
    if response.citations:
        typer.echo("\nSources:")
        for citation in response.citations:  # numbered as the answer's [n] markers
            typer.echo(
                f"  [{citation.number}] {citation.source} (chunk {citation.chunk_id}, "
                f"score {citation.score:.3f})"
            )
    prompt = response.prompt
    variant = f", variant {prompt.variant}" if prompt.variant else ""
    phases = ", ".join(
        f"{name} {ms:.1f}" for name, ms in response.latency_ms.items() if "." not in name
    )
    typer.echo(
        f"\nmodel: {response.model}  prompt: {prompt.name} v{prompt.version} "
        f"({prompt.semver}, {prompt.alias}{variant})"
        f"\nusage: {response.usage.input_tokens} in / {response.usage.output_tokens} out  "
        f"cost: ${response.cost:.6f}  refused: {response.refused}"
        f"\nlatency_ms: {phases}"
        f"\ntrace_id: {response.trace_id}  session_id: {response.session_id}  "
        f"state_version: {response.state_version}"
    )


@runtime_app.command("graph")
def graph() -> None:
    """Print the request workflow graph as Mermaid."""
    from agent_platform.runtime.workflow import mermaid

    typer.echo(mermaid())


@runtime_app.command("history")
def history(
    session: Annotated[str, typer.Option("--session", help="The session id.")],
    tenant: TenantOption,
    user: UserOption,
) -> None:
    """List the versions of a session's conversation state."""
    from agent_platform.security.crypto import EncryptionError

    runtime = _runtime()
    try:
        versions = runtime.history(session, tenant=tenant, user=user)
    except EncryptionError as exc:  # tampered or moved state: refused, never shown as garbage
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        runtime.close()
    if not versions:
        typer.echo(f"error: session {session!r} has no versions", err=True)
        raise typer.Exit(1)
    for info in versions:
        restored = f"  (restored from v{info.restored_from})" if info.restored_from else ""
        typer.echo(f"v{info.version}  {info.turn_count} turn(s){restored}")


@runtime_app.command("rollback")
def rollback(
    version: Annotated[int, typer.Argument(help="The version to restore.", min=1)],
    session: Annotated[str, typer.Option("--session", help="The session id.")],
    tenant: TenantOption,
    user: UserOption,
) -> None:
    """Restore an earlier version of a session's conversation (written as a new version)."""
    from agent_platform.runtime.memory import VersionNotFoundError
    from agent_platform.security.crypto import EncryptionError

    runtime = _runtime()
    try:
        state = runtime.rollback(session, version, tenant=tenant, user=user)
    except (VersionNotFoundError, ValueError, EncryptionError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        runtime.close()
    typer.echo(
        f"session {session}: version {state.version} now holds version {version} "
        f"({len(state.turns)} turn(s))"
    )
