"""The CLI contract scripts rely on: `ingest --json`, `search --json`, index backup/restore."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_platform.cli.main import app

runner = CliRunner(env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    (root / "guides").mkdir(parents=True)
    (root / "guides" / "restore.md").write_text(
        "# Restoring\n\nUse the index restore command with a snapshot id to bring an index back."
    )
    (root / "pricing.txt").write_text("The extractive model costs nothing per token.")
    (root / "blob.txt").write_bytes(b"\x00\x00\x00")
    return root


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result


def test_ingest_search_backup_restore(platform_home: Path, corpus: Path, tmp_path: Path) -> None:
    result = invoke("ingest", "--tenant", "docs", str(corpus), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["documents_seen"] == 3
    assert summary["documents_skipped"] == [
        {"path": "blob.txt", "reason": "binary content (NUL bytes) in a text file"}
    ]
    assert summary["chunks_total"] == summary["chunks_embedded"] == 2
    assert summary["chunks_reused"] == 0 and summary["chunks_deleted"] == 0

    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        json.dumps({"query": "bring an index back from a snapshot"})
        + "\n\n"
        + json.dumps({"query": "price per token"})
        + "\n"
    )
    result = invoke(
        "search", "--tenant", "docs", "--k", "1", "--json", "--queries-file", str(queries)
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == [
        "bring an index back from a snapshot",
        "price per token",
    ]
    assert lines[0]["hits"][0]["source"] == "guides/restore.md"
    assert lines[1]["hits"][0]["source"] == "pricing.txt"
    hit = lines[0]["hits"][0]
    assert set(hit) == {"source", "chunk_id", "score", "text"}
    assert 0.0 <= hit["score"] <= 1.0

    filtered = invoke(
        "search", "--tenant", "docs", "--json", "--filter", "source=pricing.txt", "restore"
    )
    assert [h["source"] for h in json.loads(filtered.stdout)["hits"]] == ["pricing.txt"]
    bad_filter = invoke("search", "--tenant", "docs", "--filter", "nonsense", "restore")
    assert bad_filter.exit_code == 2 and "KEY=VALUE" in bad_filter.output

    backup = invoke("index", "backup", "--tenant", "docs")
    assert backup.exit_code == 0, backup.output
    snapshot_id = json.loads(backup.stdout)["snapshot_id"]

    (corpus / "pricing.txt").unlink()
    after = json.loads(invoke("ingest", "--tenant", "docs", str(corpus), "--json").stdout)
    assert after["chunks_deleted"] == 1
    gone = json.loads(invoke("search", "--tenant", "docs", "--json", "price per token").stdout)
    assert all(h["source"] != "pricing.txt" for h in gone["hits"])

    restored = invoke("index", "restore", "--tenant", "docs", "--snapshot", snapshot_id)
    assert restored.exit_code == 0, restored.output
    assert json.loads(restored.stdout)["chunk_count"] == 2
    back = json.loads(invoke("search", "--tenant", "docs", "--json", "price per token").stdout)
    assert back["hits"][0]["source"] == "pricing.txt"

    missing = invoke("index", "restore", "--tenant", "docs", "--snapshot", "20000101T000000Z")
    assert missing.exit_code == 1
    assert "20000101T000000Z" in missing.output


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "x" * 80])
def test_invalid_tenant_names_are_refused(platform_home: Path, corpus: Path, name: str) -> None:
    result = invoke("ingest", "--tenant", name, str(corpus))
    assert result.exit_code == 2
    assert "tenant name" in result.output
    assert not (platform_home / "tenants.json").exists()


def test_search_needs_exactly_one_query_source(platform_home: Path) -> None:
    result = invoke("search", "--tenant", "docs")
    assert result.exit_code == 2
    assert "exactly one of QUERY or --queries-file" in result.output


def test_bad_queries_file_names_the_line(platform_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"query": "fine"}\n{"text": "no query field"}\n')
    result = invoke("search", "--tenant", "docs", "--queries-file", str(bad))
    assert result.exit_code == 2
    assert "q.jsonl:2" in result.output


def test_ingest_missing_directory(platform_home: Path, tmp_path: Path) -> None:
    result = invoke("ingest", "--tenant", "docs", str(tmp_path / "missing"))
    assert result.exit_code == 2
    assert "is not a directory" in result.output


def test_ingest_reports_many_skips_of_one_kind_on_one_line(
    platform_home: Path, corpus: Path
) -> None:
    """A folder of pictures is one line of the human report, while `--json` keeps every path."""
    for n in range(5):
        (corpus / f"figure-{n}.png").write_bytes(b"\x89PNG\r\n")
    result = invoke("ingest", "--tenant", "docs", str(corpus))
    assert result.exit_code == 0, result.output
    png_lines = [line for line in result.output.splitlines() if ".png" in line]
    assert len(png_lines) == 1, result.output
    assert "skipped 5 files (figure-0.png, figure-1.png, figure-2.png, …)" in png_lines[0]
    assert "unsupported file type '.png'" in png_lines[0]
    assert "skipped blob.txt: binary content" in result.output
