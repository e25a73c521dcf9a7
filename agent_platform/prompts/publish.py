"""Publishing: validate and test a prompt, derive its version, register it in MLflow.

A prompt that fails validation or its tests is never registered, so nothing that is broken can
reach an alias; what serves `production` keeps serving. Publishing is idempotent: when the newest
registered version has the same content hash, nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent_platform.prompts.contract import contract_of, effective_variables
from agent_platform.prompts.errors import Problem, PromptValidationError, problem
from agent_platform.prompts.repository import PromptRepository
from agent_platform.prompts.store import CANDIDATE, MlflowPromptStore, StoredVersion
from agent_platform.prompts.testing import run_prompt_tests
from agent_platform.prompts.validation import validate_prompt
from agent_platform.prompts.versioning import (
    Bump,
    VersionFacts,
    bump_version,
    classify_change,
    git_commit,
    text_fingerprint,
    unified_diff,
)


@dataclass(frozen=True)
class Publication:
    """The outcome of publishing one prompt: the version now newest, and what changed."""

    name: str
    version: StoredVersion
    previous: StoredVersion | None
    created: bool
    bump: Bump | None = None
    changes: list[str] = field(default_factory=list)
    diff: str = ""


def check_prompt(
    repo: PromptRepository, name: str, tokenizer_dirs: Mapping[str, Path | str] | None = None
) -> list[Problem]:
    """Validation problems, then failed prompt tests, of `name` (empty: fit to publish)."""
    problems = validate_prompt(repo, name, tokenizer_dirs)
    if problems:
        return problems
    prompt = repo.get(name)
    return [
        problem(prompt.path, prompt.line_of(outcome.case), f"test {outcome.case!r} {why}", "test")
        for outcome in run_prompt_tests(repo, name, tokenizer_dirs)
        for why in outcome.failures
    ]


def version_facts(repo: PromptRepository, name: str) -> VersionFacts:
    """Content hash, text fingerprint and contract of the prompt as it is in the repository."""
    chain = repo.chain(name)
    return VersionFacts(
        repo.content_hash(name),
        text_fingerprint([p.source for p in chain]),
        contract_of(effective_variables(chain)),
    )


def publish_prompt(
    repo: PromptRepository,
    store: MlflowPromptStore,
    name: str,
    tokenizer_dirs: Mapping[str, Path | str] | None = None,
) -> Publication:
    """Register `name` (and, first, any unregistered ancestor) if its content is new.

    Raises:
        PromptValidationError: the prompt (or an ancestor) is invalid or fails its tests.
    """
    problems = check_prompt(repo, name, tokenizer_dirs)
    if problems:
        raise PromptValidationError(name, problems)
    prompt = repo.get(name)
    if prompt.spec is None:  # unreachable: validation reports a broken header
        raise PromptValidationError(name, list(prompt.problems))
    parent = None
    if prompt.spec.extends:
        parent = publish_prompt(repo, store, prompt.spec.extends, tokenizer_dirs).version
    facts = version_facts(repo, name)
    latest = store.latest(name)
    if latest is not None and latest.content_hash == facts.content_hash:
        return Publication(name, latest, latest, created=False)
    if latest is None:
        bump: Bump = "major"
        changes = ["first version"]
    else:
        bump, changes = classify_change(latest.facts(), facts)
        old_parent = latest.parent
        new_parent = (parent.name, parent.version) if parent else None
        if old_parent != new_parent:
            was = f"{old_parent[0]} v{old_parent[1]}" if old_parent else "none"
            now = f"{new_parent[0]} v{new_parent[1]}" if new_parent else "none"
            changes.append(f"parent {was} -> {now}")
    semver = bump_version(latest.semver if latest else None, bump)
    commit = git_commit(prompt.path)
    tags = {
        "semver": semver,
        "content_hash": facts.content_hash,
        "text_fingerprint": facts.text_fingerprint,
        "contract": json.dumps(facts.contract, sort_keys=True),
        "bump": bump,
        "changes": json.dumps(changes),
        "git_commit": commit or "unknown",
        "source_path": str(prompt.path),
        "required_approvals": json.dumps(prompt.spec.review.required_approvals),
    }
    if parent is not None:
        tags |= {"parent": parent.name, "parent_version": str(parent.version)}
    message = f"{semver} ({bump}): " + "; ".join(changes)
    stored = store.register(name, prompt.source, tags, message)
    store.set_alias(name, CANDIDATE, stored.version)
    old_label = latest.label() if latest else "/dev/null"
    diff = unified_diff(latest.template if latest else "", prompt.source, old_label, stored.label())
    return Publication(name, stored, latest, True, bump, changes, diff)
