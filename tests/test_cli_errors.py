"""Errors a person can act on: one line naming the input, the problem and what to do.

Reproduced for real through the CLI: a bad TOML file, unknown settings keys, the production
profile without services, a missing queries file, an unreachable Redis, a fresh home's first
`run` (prompts publish on first use in `local`; in production the error names the command).
`--debug` and AGENT_PLATFORM_DEBUG=1 show the traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_platform.cli.main import app

runner = CliRunner(env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
REPO = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def error_line(result) -> str:
    """Failed with exactly one `error:` line on stderr, no traceback, nothing else."""
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def config_file(platform_home: Path, monkeypatch: pytest.MonkeyPatch):
    """Write the settings file and point AGENT_PLATFORM_CONFIG_FILE at it."""

    def write(text: str) -> Path:
        path = platform_home.parent / "agent-platform.toml"
        path.write_text(text, encoding="utf-8")
        monkeypatch.setenv("AGENT_PLATFORM_CONFIG_FILE", str(path))
        return path

    return write


def test_invalid_toml_names_the_file_and_the_line(config_file) -> None:
    path = config_file('profile = "local\nhome = "/tmp"\n')
    result = invoke("config", "show")
    assert result.exit_code == 2
    line = error_line(result)
    assert str(path) in line and "not valid TOML" in line and "line 1" in line


@pytest.mark.parametrize(
    ("text", "key", "suggestion"),
    [
        ('profile = "local"\nembeding = {batch_size = 8}\n', "'embeding'", "'embedding'"),
        ("[embedding]\nbatchsize = 8\n", "'embedding.batchsize'", "'embedding.batch_size'"),
        ("snapshot_retention = 3\n", "'snapshot_retention'", "'snapshot_retention_days'"),
    ],
)
def test_unknown_settings_keys_are_refused_by_name(config_file, text, key, suggestion) -> None:
    path = config_file(text)
    result = invoke("config", "show")
    assert result.exit_code == 2
    line = error_line(result)
    assert f"unknown key {key}" in line and suggestion in line and str(path) in line


def test_unknown_runtime_keys_are_refused_by_name(config_file) -> None:
    from agent_platform.runtime.config import RuntimeSettings
    from agent_platform.settings import ConfigError, Settings

    config_file('profile = "local"\n[runtime]\nmodelz = []\n')
    Settings()  # [runtime] belongs to RuntimeSettings, which refuses its unknown key
    with pytest.raises(ConfigError, match=r"unknown key 'runtime\.modelz'.*'runtime\.models'"):
        RuntimeSettings()
    config_file("[runtime.retry]\nattempt = 2\n")
    with pytest.raises(ConfigError, match=r"'runtime\.retry\.attempt'"):
        RuntimeSettings()


def test_known_keys_still_load(config_file) -> None:
    config_file("hnsw_ef_search = 64\n[embedding]\nbatch_size = 8\n[runtime.retry]\nattempts = 2\n")
    shown = invoke("config", "show", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["embedding"]["batch_size"] == 8


def test_production_profile_without_services_is_one_line(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_PLATFORM_PROFILE", "production")
    monkeypatch.setenv("AGENT_PLATFORM_POSTGRES_URL", "postgresql://agent:s3cret@db/agents")
    result = invoke("config", "show")
    assert result.exit_code == 2
    line = error_line(result)
    assert "AGENT_PLATFORM_WEAVIATE_URL" in line and "AGENT_PLATFORM_MLFLOW_TRACKING_URI" in line
    assert "s3cret" not in result.output


def test_missing_queries_file_is_a_usage_error(platform_home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "queries.jsonl"
    result = invoke("search", "--tenant", "docs", "--queries-file", str(missing))
    assert result.exit_code == 2
    line = error_line(result)
    assert "--queries-file" in line and str(missing) in line and "--help" in line


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent_platform.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        timeout=120,
    )


def test_debug_shows_the_traceback(config_file) -> None:
    config_file("profile = [\n")
    plain = _cli("config", "show")
    assert plain.returncode == 2
    assert plain.stderr.strip().count("\n") == 0 and "not valid TOML" in plain.stderr
    for debugged in (
        _cli("--debug", "config", "show"),
        _cli("config", "show", AGENT_PLATFORM_DEBUG="1"),
    ):
        assert debugged.returncode != 0
        assert "Traceback (most recent call last)" in debugged.stderr
        assert "ConfigError" in debugged.stderr


def test_fresh_home_answers_and_production_names_the_commands(
    mlflow_settings, platform_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's flow: `ingest` then `run` answers without `prompts publish` (local)."""
    corpus = tmp_path / "kb"
    corpus.mkdir()
    (corpus / "restore.md").write_text(
        "# Restoring\n\nUse the index restore command with a snapshot id to bring an index back."
    )
    assert invoke("ingest", "--tenant", "acme", str(corpus)).exit_code == 0
    strict_home = tmp_path / "strict-home"  # the same tenant and index, no prompt published
    shutil.copytree(platform_home, strict_home, ignore=shutil.ignore_patterns("dagster"))

    answered = invoke("run", "--tenant", "acme", "--user", "alice", "How do I restore?")
    assert answered.exit_code == 0, answered.output
    assert "snapshot id" in answered.stdout and "[1] restore.md" in answered.stdout
    assert "prompt: grounded_qa_system v1 (1.0.0, candidate)" in answered.stdout
    listing = {p["name"]: p for p in json.loads(invoke("prompts", "list", "--json").stdout)}
    assert {"base_system", "grounded_qa_system", "grounded_qa_user"} <= set(listing)
    assert listing["grounded_qa_system"]["aliases"] == {"candidate": 1}
    assert "first version" in invoke("prompts", "changelog", "grounded_qa_system").stdout

    # an unreachable Redis: one line naming the setting, no bare `agent request …` log line
    monkeypatch.setenv("AGENT_PLATFORM_REDIS_URL", "redis://127.0.0.1:1/0")
    result = invoke("run", "--tenant", "acme", "--user", "alice", "How do I restore?")
    assert result.exit_code == 1
    line = error_line(result)
    assert "cannot reach" in line and "Redis" in line and "AGENT_PLATFORM_REDIS_URL" in line
    monkeypatch.delenv("AGENT_PLATFORM_REDIS_URL")

    # production behaviour: nothing is published or served unpromoted; the error names the fix
    monkeypatch.setenv("AGENT_PLATFORM_HOME", str(strict_home))
    monkeypatch.setenv("AGENT_PLATFORM_PROMPTS__PUBLISH_ON_FIRST_USE", "false")
    monkeypatch.setenv("AGENT_PLATFORM_PROMPTS__UNPROMOTED_FALLBACK", "false")
    refused = invoke("run", "--tenant", "acme", "--user", "alice", "How do I restore?")
    assert refused.exit_code == 1
    line = error_line(refused)
    assert "has no registered version" in line and "agent-platform prompts publish" in line
    published = invoke("prompts", "publish")
    assert published.exit_code == 0, published.output
    line = error_line(invoke("run", "--tenant", "acme", "--user", "alice", "How do I restore?"))
    assert "agent-platform prompts promote grounded_qa_system VERSION" in line


def test_a_worker_without_dagster_celery_says_what_to_install(
    platform_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interpreter with no dagster-celery beside it, none on PATH: nothing is exec'd."""
    elsewhere = tmp_path / "bin"
    elsewhere.mkdir()
    monkeypatch.setattr(sys, "executable", str(elsewhere / "python"))
    monkeypatch.setenv("PATH", str(elsewhere))
    result = invoke("worker", "--name", "w1")
    assert result.exit_code == 1
    assert error_line(result) == "error: dagster-celery: not installed; pip install dagster-celery"
