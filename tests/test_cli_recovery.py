"""Recovery through the CLI: every repair command an error names is run, and it works.

A damaged ANN file is regenerated from the stored records (`index rebuild`, or any `ingest`); a
damaged records database is rebuilt from the tenant's source documents (`ingest`) or restored
from a snapshot. The error of every damaged-index case is one line naming the repair.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_platform.cli.main import app

runner = CliRunner(env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
COMMAND = re.compile(r"agent-platform ((?:[\w-]+|<source-dir>)(?: (?:[\w-]+|<source-dir>))*)")


def invoke(*args: str):
    return runner.invoke(app, list(args))


def named_commands(output: str, source_dir: Path) -> list[list[str]]:
    """The `agent-platform …` commands an error line names, ready to invoke."""
    return [
        [str(source_dir) if word == "<source-dir>" else word for word in shlex.split(found)]
        for found in COMMAND.findall(output)
    ]


def error_line(result) -> str:
    """The command failed with exactly one line (no traceback) on stderr."""
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    root.mkdir()
    (root / "restore.md").write_text(
        "# Restoring\n\nUse the index restore command with a snapshot id to bring an index back."
    )
    (root / "pricing.txt").write_text("The extractive model costs nothing per token.")
    return root


def live_file(home: Path, tenant: str, pattern: str) -> Path:
    (found,) = list((home / "index" / tenant).glob(f"data-*/{pattern}"))
    return found


def assert_healthy(tenant: str) -> None:
    verified = invoke("index", "verify", "--tenant", tenant)
    assert verified.exit_code == 0, verified.output
    found = json.loads(invoke("search", "--tenant", tenant, "--json", "price per token").stdout)
    assert found["hits"][0]["source"] == "pricing.txt"


def test_damaged_ann_file_is_regenerated_by_the_command_its_error_names(
    platform_home: Path, corpus: Path
) -> None:
    assert invoke("ingest", "--tenant", "docs", str(corpus)).exit_code == 0
    ann = live_file(platform_home, "docs", "ann-*.bin")
    ann.write_bytes(ann.read_bytes()[:100])  # truncate -s 100

    for failing in (
        ["run", "--tenant", "docs", "--user", "alice", "What does the model cost?"],
        ["search", "--tenant", "docs", "price"],
        ["index", "verify", "--tenant", "docs"],
    ):
        line = error_line(invoke(*failing))
        assert "tenant 'docs'" in line and "has 100 bytes" in line
        assert named_commands(line, corpus) == [["index", "rebuild", "--tenant", "docs"]]

    rebuilt = invoke(*named_commands(line, corpus)[0])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert json.loads(rebuilt.stdout) == {"tenant": "docs", "rebuilt": True, "chunks_total": 2}
    assert_healthy("docs")

    # flipped bytes, same size: the checksum catches it, and a plain ingest repairs it as well
    ann = live_file(platform_home, "docs", "ann-*.bin")
    data = bytearray(ann.read_bytes())
    data[200:216] = bytes(b ^ 0xFF for b in data[200:216])
    ann.write_bytes(bytes(data))
    assert "checksum" in error_line(invoke("index", "verify", "--tenant", "docs"))
    ingested = invoke("ingest", "--tenant", "docs", str(corpus), "--json")
    assert ingested.exit_code == 0, ingested.output
    summary = json.loads(ingested.stdout)
    assert summary["index_repaired"] == "rebuilt" and summary["chunks_embedded"] == 0
    assert_healthy("docs")


def test_damaged_records_are_rebuilt_from_sources_or_restored_as_the_error_says(
    platform_home: Path, corpus: Path
) -> None:
    assert invoke("ingest", "--tenant", "docs", str(corpus)).exit_code == 0
    with live_file(platform_home, "docs", "records.sqlite").open("r+b") as fh:
        fh.write(b"this is not a database" * 50)

    line = error_line(invoke("search", "--tenant", "docs", "price"))
    assert "records database" in line
    assert named_commands(line, corpus) == [["ingest", str(corpus), "--tenant", "docs"]]
    # `index rebuild` needs intact records: it refuses, naming the same repair
    rebuild = invoke("index", "rebuild", "--tenant", "docs")
    assert rebuild.exit_code == 1
    assert named_commands(rebuild.output, corpus) == [["ingest", str(corpus), "--tenant", "docs"]]

    repaired = invoke(*named_commands(line, corpus)[0], "--json")
    assert repaired.exit_code == 0, repaired.output
    summary = json.loads(repaired.stdout)
    assert summary["index_repaired"] == "reindexed"
    assert summary["chunks_embedded"] == 0  # the vectors came from the embeddings table
    assert_healthy("docs")

    # with a snapshot, the error names the restore too, and that works as well
    snapshot_id = json.loads(invoke("index", "backup", "--tenant", "docs").stdout)["snapshot_id"]
    with live_file(platform_home, "docs", "records.sqlite").open("r+b") as fh:
        fh.write(b"\xff" * 4096)
    line = error_line(invoke("index", "verify", "--tenant", "docs"))
    commands = named_commands(line, corpus)
    assert commands[1] == ["index", "restore", "--tenant", "docs", "--snapshot", snapshot_id]
    restored = invoke(*commands[1])
    assert restored.exit_code == 0, restored.output
    assert_healthy("docs")
