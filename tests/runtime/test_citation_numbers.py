"""The answer's `[n]` markers, `response.citations` and the CLI's Sources list agree (issue 8,
item 10): a real run of the extractive model on the indexed handbook."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from agent_platform.runtime.grounding import cited_numbers

AGENT_TENANT = "handbook"
# Retrieval ranks security.html first ("administrators"), the extractive model quotes shipping.md,
# the second source it was given: the answer cites only [2] (a list renumbered from 1 shows [1]).
QUESTION = "administrators business days"


@pytest.fixture
def response(make_runtime):
    return make_runtime().run(tenant=AGENT_TENANT, user="alice", input=QUESTION)


def test_markers_equal_the_citation_numbers(response) -> None:
    markers = cited_numbers(response.answer)
    assert markers and max(markers) > len(markers), response.answer
    assert [c.number for c in response.citations] == markers
    used = [c for c in response.retrieved if c.used]
    for citation in response.citations:  # [n] is the n-th source the model was given
        assert citation.chunk_id == used[citation.number - 1].chunk_id


def test_cli_sources_list_uses_the_answer_markers(
    agent_home, response, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_platform.cli.main import app

    monkeypatch.setenv("AGENT_PLATFORM_HOME", str(agent_home))
    monkeypatch.setenv("DAGSTER_HOME", str(agent_home / "dagster"))
    result = CliRunner().invoke(app, ["run", "--tenant", AGENT_TENANT, "--user", "bob", QUESTION])
    assert result.exit_code == 0, result.output
    answer, _, rest = result.output.partition("\nSources:\n")
    listed = [int(n) for n in re.findall(r"^  \[(\d+)\] ", rest, flags=re.MULTILINE)]
    assert listed == cited_numbers(answer) == [c.number for c in response.citations]
