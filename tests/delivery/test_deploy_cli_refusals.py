"""`agent-platform deploy` where there is nothing to deploy or roll back: status and watch say
so, and a refused approval, rollback or start is one `error:` line with status 1 that leaves no
rollout and no approval behind."""

from __future__ import annotations

from typer.testing import CliRunner

from agent_platform.audit import open_audit_log
from agent_platform.cli.main import app
from agent_platform.delivery.state import open_rollout_store
from agent_platform.settings import Settings

runner = CliRunner(env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
AGENT = "grounded-qa"
NO_ROLLOUT = f"{AGENT}: no rollout yet (`agent-platform deploy VERSION`)"


def _refused(*args: str) -> str:
    result = runner.invoke(app, ["--as", "ops", *args])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert "unexpected" not in lines[0] and "--debug" not in lines[0]  # the operator's mistake
    return lines[0]


def test_status_and_watch_without_a_rollout(platform_home) -> None:
    status = runner.invoke(app, ["deploy", "status", "--agent", AGENT])
    assert status.exit_code == 0 and status.stdout.strip() == NO_ROLLOUT
    watched = runner.invoke(app, ["deploy", "watch", "--every", "0"])
    assert watched.exit_code == 0 and watched.stdout.strip() == NO_ROLLOUT  # returns at once


def test_refused_approvals_rollbacks_and_starts_leave_nothing_behind(mlflow_settings) -> None:
    assert _refused("deploy", "rollback") == (
        f"error: {AGENT} has no rollout in progress to roll back"
    )
    wrong_role = _refused("deploy", "approve", "3", "--role", "janitor")
    assert wrong_role.startswith("error: --role: 'janitor' is not a deployment approver role (")
    unknown = _refused("deploy", "approve", "3", "--role", "release_manager")
    assert unknown.startswith(f"error: no registered agent named '{AGENT}'")

    started = runner.invoke(app, ["--as", "ops", "deploy", "3"])
    assert started.exit_code == 1
    assert started.stderr.strip() == (
        f"error: step agent_rollout failed: no registered agent named '{AGENT}' (known: [])"
    )
    assert started.stdout.strip() == NO_ROLLOUT  # the state after the refusal

    settings = Settings(home=mlflow_settings.home_dir)
    assert open_rollout_store(settings).latest(AGENT) is None
    assert [r.kind for r in open_audit_log(settings).tail(10) if r.kind.startswith("rollout")] == []
