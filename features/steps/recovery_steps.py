"""Steps of an operator who snapshots an index, finds it damaged and restores it."""

from __future__ import annotations

import re
import shlex

from behave import given, then, when
from behave.runner import Context
from cli import agent_platform, json_out, one_error_line

COMMAND = re.compile(r"agent-platform (index restore(?: --[\w-]+ [\w-]+)+)")


@given('the operator has taken a snapshot of tenant "{tenant}"')
def backup(context: Context, tenant: str) -> None:
    context.snapshot_id = json_out(agent_platform("index", "backup", "--tenant", tenant))[
        "snapshot_id"
    ]


@when('the records database of tenant "{tenant}" is overwritten with garbage')
def corrupt_records(context: Context, tenant: str) -> None:
    (records,) = (context.home / "index" / tenant).glob("data-*/records.sqlite")
    with records.open("r+b") as handle:
        handle.write(b"this is not a database" * 50)


@then('searching tenant "{tenant}" fails with one line naming the restore of that snapshot')
def search_fails(context: Context, tenant: str) -> None:
    line = one_error_line(agent_platform("search", "--tenant", tenant, "price per token"))
    assert f"tenant {tenant!r}" in line, line
    found = COMMAND.findall(line)
    assert found == [f"index restore --tenant {tenant} --snapshot {context.snapshot_id}"], line
    context.repair = shlex.split(found[0])


@when("the operator runs the restore command the error names")
def run_repair(context: Context) -> None:
    context.restored = json_out(agent_platform(*context.repair))


@then('the index of tenant "{tenant}" verifies as healthy with {chunks:d} chunks')
def verified(context: Context, tenant: str, chunks: int) -> None:
    assert context.restored["chunk_count"] == chunks, context.restored
    result = agent_platform("index", "verify", "--tenant", tenant)
    assert result.exit_code == 0, result.output
