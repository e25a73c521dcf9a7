"""Tenants stay apart: unknown tenants are refused, a tenant's source directory changes only on
request, and concurrent ingests of one tenant serialise, each reporting what it indexed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_platform.cli.main import app
from agent_platform.tenants import TenantRegistry

runner = CliRunner(env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
REPO = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def _corpus(root: Path, label: str, files: int) -> Path:
    root.mkdir(parents=True)
    for n in range(files):
        (root / f"{label}-{n}.md").write_text(
            f"# {label} {n}\n\nThe {label} handbook, page {n}, explains the {label} procedure."
        )
    return root


@pytest.mark.parametrize(
    "command",
    [
        ["search", "--tenant", "ghost", "anything"],
        ["index", "backup", "--tenant", "ghost"],
        ["index", "rebuild", "--tenant", "ghost"],
        ["index", "verify", "--tenant", "ghost"],
        ["index", "restore", "--tenant", "ghost", "--snapshot", "20260101T000000Z"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_unknown_tenant_is_refused_and_nothing_is_created(platform_home: Path, command) -> None:
    result = invoke(*command)
    assert result.exit_code == 1, result.output
    assert "unknown tenant 'ghost'" in result.stderr
    assert "agent-platform ingest --tenant ghost DIR" in result.stderr
    assert "Traceback" not in result.output
    assert not (platform_home / "index" / "ghost").exists()
    assert not (platform_home / "snapshots" / "ghost").exists()


def test_changing_a_tenants_source_directory_must_be_explicit(
    platform_home: Path, tmp_path: Path
) -> None:
    first = _corpus(tmp_path / "first", "alpha", 1)
    second = _corpus(tmp_path / "second", "bravo", 2)
    assert invoke("ingest", "--tenant", "docs", str(first), "--json").exit_code == 0

    refused = invoke("ingest", "--tenant", "docs", str(second), "--json")
    assert refused.exit_code == 1
    assert str(first.resolve()) in refused.stderr and "--change-source" in refused.stderr
    assert TenantRegistry(platform_home / "tenants.json").source_dir("docs") == first.resolve()
    hits = json.loads(invoke("search", "--tenant", "docs", "--json", "procedure").stdout)["hits"]
    assert {h["source"] for h in hits} == {"alpha-0.md"}  # the index was not touched

    moved = invoke("ingest", "--tenant", "docs", str(second), "--json", "--change-source")
    assert moved.exit_code == 0, moved.output
    summary = json.loads(moved.stdout)
    assert summary["source_dir"] == str(second.resolve())
    assert summary["documents_seen"] == 2 and summary["chunks_deleted"] == 1
    hits = json.loads(invoke("search", "--tenant", "docs", "--json", "procedure").stdout)["hits"]
    assert {h["source"] for h in hits} == {"bravo-0.md", "bravo-1.md"}


@pytest.mark.slow
def test_concurrent_ingests_of_one_tenant_serialise(platform_home: Path, tmp_path: Path) -> None:
    """Three processes ingest `conc2` from three directories at once (the issue's reproduction):
    each reports the directory and documents it was given, and the index ends up holding one of
    them whole."""
    corpora = {
        label: _corpus(tmp_path / label, label, files)
        for label, files in (("red", 1), ("green", 2), ("blue", 3))
    }
    env = {**os.environ, "PYTHONPATH": str(REPO), "AGENT_PLATFORM_CLI_LOG_LEVEL": "CRITICAL"}
    command = [sys.executable, "-m", "agent_platform.cli.main", "ingest", "--tenant", "conc2"]
    processes = {
        label: subprocess.Popen(
            [*command, str(path), "--json", "--change-source"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for label, path in corpora.items()
    }
    summaries = {}
    for label, process in processes.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-2000:]
        summaries[label] = json.loads(out.strip().splitlines()[-1])
    for label, summary in summaries.items():
        assert summary["source_dir"] == str(corpora[label].resolve())
        assert summary["documents_seen"] == len(list(corpora[label].iterdir()))
    registered = TenantRegistry(platform_home / "tenants.json").source_dir("conc2")
    last = next(label for label, path in corpora.items() if path.resolve() == registered)
    found = invoke("search", "--tenant", "conc2", "--json", "--k", "10", "page")
    hits = json.loads(found.stdout)["hits"]
    assert {h["source"] for h in hits} == {p.name for p in corpora[last].iterdir()}


def test_weaviate_backend_opens_memories_in_their_own_collection(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weaviate cannot run here: check the wiring, with the server-bound class recording its
    arguments instead of connecting."""
    from agent_platform.vectorstore import weaviate_store
    from agent_platform.vectorstore.factory import open_vector_store
    from agent_platform.vectorstore.namespaces import StoreNamespace

    opened: list[dict] = []
    monkeypatch.setattr(
        weaviate_store, "WeaviateVectorStore", lambda url, **kw: opened.append(kw) or kw
    )
    production = settings.model_copy(
        update={"vector_backend": "weaviate", "weaviate_url": "http://weaviate.invalid:8080"}
    )
    open_vector_store(production)
    open_vector_store(production, StoreNamespace.MEMORY)
    assert [o["collection"] for o in opened] == ["AgentPlatformChunks", "AgentPlatformMemories"]
    assert opened[0]["snapshots_dir"] != opened[1]["snapshots_dir"]


def test_weaviate_store_defaults_to_the_knowledge_collection() -> None:
    """The Dagster resource constructs the store without a collection: it must get knowledge."""
    import inspect

    from agent_platform.vectorstore.weaviate_store import WeaviateVectorStore

    default = inspect.signature(WeaviateVectorStore).parameters["collection"].default
    assert default == "AgentPlatformChunks"


def test_knowledge_base_search_refuses_an_unknown_tenant(settings) -> None:
    """The Python API (which a gateway would call) refuses it too, rather than finding nothing."""
    from agent_platform.knowledge.service import KnowledgeBase
    from agent_platform.tenants import UnknownTenantError

    kb = KnowledgeBase(settings)
    try:
        with pytest.raises(UnknownTenantError, match="unknown tenant 'ghost'"):
            kb.search("ghost", "anything")
    finally:
        kb.close()
    assert not (settings.index_dir / "ghost").exists()
