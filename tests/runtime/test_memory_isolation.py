"""Long-term memories live in a namespace no tenant name reaches (issue 8, item 1).

Reproduction from the issue: alice asks tenant `handbook` to remember a PIN; then a tenant named
`handbook__memory` (the old memory namespace, a valid tenant name) is ingested, searched and
asked by another user. Before the fix the ingest deleted the memory and that user's search and run
returned it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from opentelemetry import context as otel_context
from typer.testing import CliRunner

from agent_platform.cli.main import app
from agent_platform.runtime.access import AccessPolicy
from agent_platform.runtime.errors import NotAuthorizedError
from agent_platform.runtime.memory import MemoryScope
from agent_platform.runtime.response import AgentRequest
from agent_platform.runtime.workflow import RunContext
from agent_platform.settings import Settings
from agent_platform.vectorstore.namespaces import (
    StoreNamespace,
    embedded_root,
    weaviate_collection,
)
from tests.runtime.conftest import AGENT_TENANT

SQUATTER = f"{AGENT_TENANT}__memory"
PIN_FACT = "my corporate card PIN is 4417"
runner = CliRunner(env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})


def _memories_for(runtime, tenant: str, user: str, question: str) -> list[str]:
    """What `load_context` would put in the prompt as memories (the real phase)."""
    run = RunContext("0" * 32, otel_context.get_current(), "s-isolation")
    run.request = AgentRequest(tenant=tenant, user=user, input=question)
    run.scope = MemoryScope(tenant, user, "s-isolation")
    return runtime.services.load_context(run)["memories"]


def test_a_tenant_named_like_the_memory_namespace_reaches_no_memory(
    make_runtime, agent_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"  # a copy: the CLI registers a tenant and writes Dagster runs
    shutil.copytree(agent_home, home)
    settings = Settings(home=home)
    runtime = make_runtime(settings=settings)
    runtime.run(tenant=AGENT_TENANT, user="alice", input=f"remember that {PIN_FACT}")
    assert [m.text for m in runtime.services.long_term.recall(AGENT_TENANT, "alice", "PIN")] == [
        PIN_FACT
    ]

    # `ingest --tenant handbook__memory DIR`: an ordinary tenant that deletes nothing else.
    monkeypatch.setenv("AGENT_PLATFORM_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    docs = tmp_path / "squatter"
    docs.mkdir()
    (docs / "cards.md").write_text("# Cards\n\nLost corporate cards are reported to finance.")
    ingested = runner.invoke(app, ["ingest", "--tenant", SQUATTER, str(docs), "--json"])
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)["chunks_deleted"] == 0
    assert [m.text for m in runtime.services.long_term.recall(AGENT_TENANT, "alice", "PIN")] == [
        PIN_FACT
    ]

    # Rebuilding, backing up and restoring that tenant leave the memory alone too.
    assert runner.invoke(app, ["index", "rebuild", "--tenant", SQUATTER]).exit_code == 0
    backup = runner.invoke(app, ["index", "backup", "--tenant", SQUATTER])
    assert backup.exit_code == 0, backup.output
    snapshot = json.loads(backup.stdout)["snapshot_id"]
    restore = ["index", "restore", "--tenant", SQUATTER, "--snapshot", snapshot]
    assert runner.invoke(app, restore).exit_code == 0
    assert [m.text for m in runtime.services.long_term.recall(AGENT_TENANT, "alice", "PIN")] == [
        PIN_FACT
    ]

    # `search --tenant handbook__memory PIN` shows the tenant's documents, never the memory.
    searched = runner.invoke(app, ["search", "--tenant", SQUATTER, "--json", "PIN"])
    assert searched.exit_code == 0, searched.output
    assert "4417" not in searched.stdout

    # With `handbook` restricted to alice, eve (the mallory; that name is another test's)
    # gets nothing of hers by any tenant name.
    guarded = make_runtime(settings=settings, access=AccessPolicy({AGENT_TENANT: ["alice"]}))
    question = "What is the corporate card PIN?"
    response = guarded.run(tenant=SQUATTER, user="eve", input=question)
    assert "4417" not in response.answer
    assert all(not c.chunk_id.startswith("mem-") for c in response.citations)
    assert _memories_for(guarded, SQUATTER, "eve", question) == []
    with pytest.raises(NotAuthorizedError):
        guarded.run(tenant=AGENT_TENANT, user="eve", input=question)
    assert _memories_for(guarded, AGENT_TENANT, "alice", question) == [PIN_FACT]


def test_memories_are_private_to_their_user_unless_shared(make_runtime) -> None:
    runtime = make_runtime()
    memory = runtime.services.long_term
    memory.remember(AGENT_TENANT, "heidi", "my locker code is 2931")
    memory.remember(AGENT_TENANT, "heidi", "the team standup is at 9:15", shared=True)
    ivan = [m.text for m in memory.recall(AGENT_TENANT, "ivan", "locker code standup time", k=10)]
    assert "the team standup is at 9:15" in ivan
    assert "my locker code is 2931" not in ivan
    heidi = [m.text for m in memory.recall(AGENT_TENANT, "heidi", "locker code standup", k=10)]
    assert {"my locker code is 2931", "the team standup is at 9:15"} <= set(heidi)


def test_memory_and_knowledge_namespaces_are_disjoint_on_every_backend(
    make_runtime, agent_settings
) -> None:
    """Embedded: sibling roots, neither inside the other. Weaviate: separate collections."""
    services = make_runtime().services
    assert services.long_term.store.root == agent_settings.memory_index_dir
    assert services.knowledge.store.root == agent_settings.index_dir
    knowledge = embedded_root(agent_settings, StoreNamespace.KNOWLEDGE)
    memory = embedded_root(agent_settings, StoreNamespace.MEMORY)
    assert knowledge != memory
    assert not memory.is_relative_to(knowledge) and not knowledge.is_relative_to(memory)
    assert weaviate_collection(StoreNamespace.KNOWLEDGE) != weaviate_collection(
        StoreNamespace.MEMORY
    )
