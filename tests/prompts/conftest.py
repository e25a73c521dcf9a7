"""Prompt test fixtures: one migrated MLflow database per session, copied into each test's home.

Creating an MLflow SQLite store runs its migrations (seconds on a busy 2-core machine); copying a
migrated, empty database is milliseconds, and every test still gets its own store.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from agent_platform.prompts import MlflowPromptStore
from agent_platform.prompts.repository import BUILTIN_PROMPTS_DIR


@pytest.fixture
def prompt_settings(mlflow_settings):
    """`settings` with a ready MLflow store (see tests/conftest.py)."""
    return mlflow_settings


@pytest.fixture
def store(prompt_settings) -> MlflowPromptStore:
    return MlflowPromptStore(prompt_settings.resolved_mlflow_tracking_uri)


@pytest.fixture
def prompt_dir(tmp_path: Path) -> Path:
    """A writable copy of the project's shipped prompts."""
    target = tmp_path / "prompts"
    shutil.copytree(BUILTIN_PROMPTS_DIR, target)
    return target


def _write_prompt(directory: Path, name: str, header: str, body: str) -> Path:
    """Write `<directory>/<name>.jinja` from a YAML header (without `name:`) and a body."""
    header = textwrap.dedent(header).strip("\n")
    text = f"{{#- ---\nname: {name}\n{header}\n--- -#}}\n{textwrap.dedent(body).lstrip()}"
    path = directory / f"{name}.jinja"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def write_prompt():
    """`write_prompt(dir, name, header_yaml, body)`: write a prompt file, return its path."""
    return _write_prompt


@pytest.fixture
def edit():
    """`edit(path, old, new)`: replace text in a file once (asserting it was there)."""
    return _edit


ROLES_TOML = """\
[approvers]
alice = ["prompt-owner"]
bob = ["safety"]
carol = ["prompt-owner", "safety"]
"""


@pytest.fixture
def roles_file(tmp_path: Path, monkeypatch) -> Path:
    """A roles file committed to its own git repository, configured as the platform's."""
    repo = tmp_path / "roles-repo"
    repo.mkdir()
    path = repo / "roles.toml"
    path.write_text(ROLES_TOML, encoding="utf-8")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "roles.toml"], check=True)
    subprocess.run([*git, "commit", "-qm", "roles"], check=True)
    monkeypatch.setenv("AGENT_PLATFORM_PROMPTS__ROLES_FILE", str(path))
    return path
