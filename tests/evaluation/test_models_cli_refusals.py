"""`agent-platform models` before anything was evaluated: an evaluation of a candidate the plan
does not have fails with one `error:` line naming it (and no blank result lines), nothing is
registered, and the history of an unknown agent is refused by name."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from agent_platform.cli.main import app

runner = CliRunner(env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})


def test_an_unknown_candidate_is_refused_and_nothing_is_registered(mlflow_settings) -> None:
    result = runner.invoke(app, ["models", "evaluate", "no-such-candidate", "--max-examples", "1"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: step evaluated_model_versions failed: unknown candidates ['no-such-candidate']; "
        "the plan has ['extractive', 'gemma']"
    ]
    listed = runner.invoke(app, ["models", "list", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []

    history = runner.invoke(app, ["models", "history", "nobody"])
    assert history.exit_code == 1
    assert history.stderr.strip() == "error: no registered agent named 'nobody' (known: [])"
