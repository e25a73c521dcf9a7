"""The runtime library never imports Dagster; only the composition root does."""

import subprocess
import sys

RUNTIME_MODULES = [
    "agent_platform",
    "agent_platform.settings",
    "agent_platform.tenants",
    "agent_platform.knowledge.service",
    "agent_platform.knowledge.pipeline",
    "agent_platform.knowledge.quality",
    "agent_platform.vectorstore.factory",
    "agent_platform.vectorstore.embedded",
    "agent_platform.langchain_adapters",
    "agent_platform.cli.knowledge",
    "agent_platform.prompts",
    "agent_platform.cli.prompts",
]


def test_runtime_imports_without_dagster() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {RUNTIME_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "assert 'dagster' not in sys.modules, sorted(m for m in sys.modules if 'dagster' in m)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_composition_root_builds_one_definitions() -> None:
    import dagster as dg

    from agent_platform.definitions import defs

    assert isinstance(defs, dg.Definitions)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"source_documents", "document_chunks", "embeddings", "vector_index"} <= keys
    for job in ("knowledge_job", "index_backup_job", "reindex_job"):
        assert defs.resolve_job_def(job).name == job


def test_workspace_yaml_loads_in_dagster(platform_home) -> None:
    """What `dagster dev` / the UI loads: the workspace validates as a code location."""
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(root / "workspace.yaml")],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stderr + result.stdout
