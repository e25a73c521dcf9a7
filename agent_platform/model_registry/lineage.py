"""What an agent model version was built from: the lineage tags of its MLflow version.

The version key hashes what changes an answer (config, prompt versions, embedding model, index
snapshot), so re-evaluating an unchanged deployable adds an evaluation, not a new version.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from agent_platform.prompts import CANDIDATE, MlflowPromptStore, PromptError
from agent_platform.prompts.versioning import git_commit
from agent_platform.runtime.agent_config import AgentConfig, PromptRef
from agent_platform.settings import Settings
from agent_platform.vectorstore.snapshots import latest_snapshot_id

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agent-platform")
    except PackageNotFoundError:
        return "unknown"


def resolve_prompt_version(store: MlflowPromptStore, ref: PromptRef) -> str:
    """The version the runtime would serve for `ref` (pinned, alias, candidate, newest)."""
    try:
        if ref.version is not None:
            return str(store.get(ref.name, ref.version).version)
        for alias in (ref.alias, CANDIDATE):
            found = store.by_alias(ref.name, alias)
            if found is not None:
                return str(found.version)
        latest = store.latest(ref.name)
    except PromptError:
        return "unregistered"
    return str(latest.version) if latest else "unregistered"


def pin_prompt_versions(settings: Settings, config: AgentConfig) -> AgentConfig:
    """`config` with each prompt pinned to the version it resolves to now, so a registered agent
    version serves exactly the prompts it was evaluated with; a later prompt promotion reaches
    serving through a new evaluated version (the evaluation sensor requests one)."""
    store = MlflowPromptStore(settings.resolved_mlflow_tracking_uri)
    pinned = {}
    for field in ("system_prompt", "user_prompt"):
        ref: PromptRef = getattr(config, field)
        version = resolve_prompt_version(store, ref)
        if ref.version is None and version.isdigit():
            pinned[field] = ref.model_copy(update={"version": int(version)})
    return config.model_copy(update=pinned) if pinned else config


def build_lineage(
    settings: Settings,
    config: AgentConfig,
    *,
    tenant: str,
    candidate: str = "",
    dataset_version: str = "",
    dagster_run_id: str = "",
    code_version: str = "",
) -> dict[str, str]:
    """Lineage tags for one candidate, including the `version_key` that identifies it."""
    store = MlflowPromptStore(settings.resolved_mlflow_tracking_uri)
    prompts = {
        ref.name: resolve_prompt_version(store, ref)
        for ref in (config.system_prompt, config.user_prompt)
    }
    snapshot = latest_snapshot_id(settings.snapshots_dir, tenant) or "none"
    embedding = settings.embedding.primary_model
    commit = git_commit(PROJECT_ROOT / "agent_platform") or "unknown"
    identity = json.dumps(
        [config.fingerprint(), prompts, embedding, snapshot, tenant], sort_keys=True
    )
    tags = {
        "candidate": candidate,
        "tenant": tenant,
        "embedding_model": embedding,
        "index_snapshot_id": snapshot,
        "dataset_version": dataset_version,
        "dagster_run_id": dagster_run_id or "none",
        "code_version": code_version or f"agent-platform {_package_version()}",
        "git_commit": commit,
        "prompts": json.dumps(prompts, sort_keys=True),
        "version_key": hashlib.sha256(identity.encode()).hexdigest()[:16],
    }
    tags |= {f"prompt.{name}.version": version for name, version in prompts.items()}
    return tags


def watched_state(settings: Settings, config: AgentConfig, tenant: str) -> dict[str, str]:
    """What the evaluation sensor watches: prompt versions and the index snapshot."""
    lineage = build_lineage(settings, config, tenant=tenant)
    return {
        "prompts": lineage["prompts"],
        "index_snapshot_id": lineage["index_snapshot_id"],
        "config": config.fingerprint(),
    }
