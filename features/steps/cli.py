"""How the scenarios drive the platform: the real Typer app in process, as a user's shell would."""

from __future__ import annotations

import json
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from agent_platform.cli.main import app

RUNNER = CliRunner(env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})


def agent_platform(*args: str) -> Result:
    """`agent-platform ARGS…` against the scenario's home (set in the environment by the hooks)."""
    return RUNNER.invoke(app, [str(arg) for arg in args])


def succeeded(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}"
    return result


def json_out(result: Result) -> Any:
    return json.loads(succeeded(result).stdout)


def one_error_line(result: Result) -> str:
    """A refused command: a non-zero status and exactly one `error: …` line, no traceback."""
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]
