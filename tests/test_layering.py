"""The runtime library never imports Dagster; only the composition root does."""

import subprocess
import sys

# The only module of the library allowed to import Dagster at import time: the composition root.
# (agent_platform.cli.execution imports Dagster only inside the function that runs a job.)
DAGSTER_ALLOWED = {"agent_platform.definitions"}


def test_every_library_module_imports_without_dagster() -> None:
    """Walk every module of `agent_platform` (new ones included) in a fresh interpreter."""
    code = f"""
import importlib, pkgutil, sys
import agent_platform
allowed = {sorted(DAGSTER_ALLOWED)!r}
names = sorted(
    m.name for m in pkgutil.walk_packages(agent_platform.__path__, "agent_platform.")
    if m.name not in allowed
)
for name in names:
    importlib.import_module(name)
    if "dagster" in sys.modules:
        sys.exit(f"importing {{name}} imported dagster")
print(len(names))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.strip()) >= 40  # the walk found the whole library


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
