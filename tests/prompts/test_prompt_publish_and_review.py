"""Publishing to a real MLflow store, approvals, promotion, rollback and the audit log."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from agent_platform.prompts import (
    CANDIDATE,
    PRODUCTION,
    ApproverRoles,
    MlflowPromptStore,
    PromotionRefusedError,
    PromotionService,
    PromptRegistry,
    PromptRepository,
    PromptValidationError,
    ReviewLog,
    publish_prompt,
    render_changelog,
)

ROLES = ApproverRoles(
    approvers={
        "prompt-owner-lead": ["prompt-owner"],
        "safety-lead": ["safety"],
        "alice": ["prompt-owner"],
        "bob": ["safety"],
        "carol": ["prompt-owner", "safety"],
    }
)
SOURCES = {"sources": [{"title": "Billing FAQ", "text": "Invoices go out monthly."}]}


def _publish_all(prompt_dir: Path, store: MlflowPromptStore) -> dict[str, int]:
    repo = PromptRepository.from_dirs([prompt_dir])
    return {n: publish_prompt(repo, store, n).version.version for n in repo.names()}


def _approve_all(service: PromotionService, name: str, version: int) -> None:
    for role in service.store.get(name, version).required_approvals:
        service.approve(name, version, role=role, by=f"{role}-lead")


@pytest.fixture
def service(store: MlflowPromptStore, prompt_settings) -> PromotionService:
    return PromotionService(store, ReviewLog.under(prompt_settings.home_dir), ROLES)


def test_publish_registers_tags_and_is_idempotent(
    prompt_dir: Path, store: MlflowPromptStore
) -> None:
    subprocess.run(["git", "init", "-q", str(prompt_dir)], check=True)
    git = ["git", "-C", str(prompt_dir), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "prompts"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()

    repo = PromptRepository.from_dirs([prompt_dir])
    first = publish_prompt(repo, store, "grounded_qa_system")
    assert first.created and first.bump == "major"
    version = first.version
    assert version.semver == "1.0.0"
    assert version.tags["git_commit"] == head
    assert version.tags["content_hash"] == repo.content_hash("grounded_qa_system")
    assert version.parent == ("base_system", 1)  # the parent was registered first, and pinned
    assert version.required_approvals == ["prompt-owner", "safety"]
    assert store.aliases("grounded_qa_system") == {CANDIDATE: 1}
    assert (
        store.get("grounded_qa_system", 1).template
        == (prompt_dir / "grounded_qa_system.jinja").read_text()
    )

    again = publish_prompt(PromptRepository.from_dirs([prompt_dir]), store, "grounded_qa_system")
    assert not again.created and again.version.version == 1
    assert len(store.versions("grounded_qa_system")) == 1


def test_versions_changelog_and_diff(prompt_dir: Path, store: MlflowPromptStore, edit) -> None:
    _publish_all(prompt_dir, store)
    user = prompt_dir / "grounded_qa_user.jinja"
    whitespace = [("{% if history %}", "{%  if history  %}\n")]
    text = [
        ("Question: {{ question }}", "User question: {{ question }}"),
        ('contains: ["Question: When', 'contains: ["User question: When'),
        ("regex: ['Question: And", "regex: ['User question: And"),
    ]
    required_variable = [
        ("    default: []\n", "    default: []\n  locale:\n    type: str\n"),
        ("User question: {{", "({{ locale }}) User question: {{"),
        ("inputs: {question: ", "inputs: {locale: en, question: "),
        ('      question: "And refunds?"', '      locale: en\n      question: "And refunds?"'),
    ]
    for edits, semver in ((whitespace, "1.0.1"), (text, "1.1.0"), (required_variable, "2.0.0")):
        for old, new in edits:
            edit(user, old, new)
        publication = publish_prompt(
            PromptRepository.from_dirs([prompt_dir]), store, "grounded_qa_user"
        )
        assert publication.created, publication
        assert publication.version.semver == semver, publication.changes
    assert "+({{ locale }}) User question: {{ question }}" in publication.diff
    log = render_changelog("grounded_qa_user", store.versions("grounded_qa_user"))
    assert log.index("## 2.0.0 (v4, major) [candidate]") < log.index("## 1.0.0 (v1, major)")
    assert "- variable 'locale' added (required)" in log
    assert "- whitespace, comments or metadata changed" in log


def test_bad_versions_are_rejected_and_production_keeps_serving(
    prompt_dir: Path, store: MlflowPromptStore, service: PromotionService, write_prompt, edit
) -> None:
    _publish_all(prompt_dir, store)
    _approve_all(service, "grounded_qa_system", 1)
    service.promote("grounded_qa_system", 1, by="release-manager")
    registry = PromptRegistry(store, ttl_seconds=0)
    served = registry.render("grounded_qa_system", SOURCES).text

    path = prompt_dir / "grounded_qa_system.jinja"
    original = path.read_text()
    breakages = {
        "does not parse": ("{% block context %}", "{% block context %}{% if %}"),
        "sandbox: access to private attribute '__mro__'": (
            "Sources:",
            "Sources: {{ ''.__class__.__mro__ }}",
        ),
        "unknown parent: unknown prompt 'base_sytem'": ("base_system", "base_sytem"),
        "over the context budget of 64": ("context_tokens: 16384", "context_tokens: 64"),
    }
    for expected, (old, new) in breakages.items():
        path.write_text(original)
        edit(path, old, new)
        if "base_sytem" in new:
            edit(path, '{% extends "base_system" %}', '{% extends "base_sytem" %}')
        with pytest.raises(PromptValidationError) as caught:
            publish_prompt(PromptRepository.from_dirs([prompt_dir]), store, "grounded_qa_system")
        message = str(caught.value)
        if expected == "does not parse":
            line = path.read_text().splitlines().index("{% block context %}{% if %}") + 1
            assert f"{path}:{line}: Expected an expression" in message
        else:
            assert expected in message
        assert [v.version for v in store.versions("grounded_qa_system")] == [1]
        assert registry.render("grounded_qa_system", SOURCES).text == served


def test_promotion_needs_every_required_approval(
    prompt_dir: Path, store: MlflowPromptStore, service: PromotionService, edit
) -> None:
    _publish_all(prompt_dir, store)
    with pytest.raises(
        PromotionRefusedError, match=r"missing approval from role\(s\) prompt-owner, safety"
    ):
        service.promote("grounded_qa_system", 1, by="eve")
    with pytest.raises(PromotionRefusedError, match="does not require role 'intern'"):
        service.approve("grounded_qa_system", 1, role="intern", by="eve")
    service.approve("grounded_qa_system", 1, role="prompt-owner", by="alice")
    with pytest.raises(
        PromotionRefusedError, match=r"role\(s\) safety \(required: prompt-owner, safety\)"
    ):
        service.promote("grounded_qa_system", "1.0.0", by="eve")
    service.approve("grounded_qa_system", 1, role="safety", by="bob")
    assert service.promote("grounded_qa_system", "candidate", by="carol").version == 1
    assert store.aliases("grounded_qa_system")[PRODUCTION] == 1
    tags = store.get("grounded_qa_system", 1).tags
    assert json.loads(tags["approval.safety"])["by"] == ["bob"]
    assert tags["promoted_by"] == "carol"

    edit(prompt_dir / "grounded_qa_system.jinja", "short, direct answer", "short answer")
    publish_prompt(PromptRepository.from_dirs([prompt_dir]), store, "grounded_qa_system")
    with pytest.raises(PromotionRefusedError, match="v2"):  # approvals are per version
        service.promote("grounded_qa_system", 2, by="carol")
    _approve_all(service, "grounded_qa_system", 2)
    service.promote("grounded_qa_system", 2, by="carol")
    assert service.rollback("grounded_qa_system", by="oncall").version == 1
    assert store.aliases("grounded_qa_system")[PRODUCTION] == 1
    with pytest.raises(PromotionRefusedError, match="no earlier production version"):
        service.rollback("grounded_qa_system", by="oncall")
    assert service.rollback("grounded_qa_system", by="oncall", to=2).version == 2

    events = [
        (e.action, e.version, e.previous_version, e.actor)
        for e in service.log.events("grounded_qa_system")
    ]
    assert events == [
        ("approve", 1, None, "alice"),
        ("approve", 1, None, "bob"),
        ("promote", 1, None, "carol"),
        ("approve", 2, None, "prompt-owner-lead"),
        ("approve", 2, None, "safety-lead"),
        ("promote", 2, 1, "carol"),
        ("rollback", 1, 2, "oncall"),
        ("rollback", 2, 1, "oncall"),
    ]
    approvals = service.log.approvals("grounded_qa_system", 1)
    assert [(a.role, a.approver) for a in approvals] == [
        ("prompt-owner", "alice"),
        ("safety", "bob"),
    ]
    assert all(a.approved_at.tzinfo is not None for a in approvals)


def test_approvals_count_once_per_approver_and_only_for_roles_still_held(
    prompt_dir: Path, store: MlflowPromptStore, service: PromotionService
) -> None:
    """Approvals written before roles were enforced (one name in both roles), or by a name whose
    role was since revoked from the roles file, do not fill a role."""
    _publish_all(prompt_dir, store)
    service.log.add_approval("grounded_qa_system", 1, "prompt-owner", "carol")
    with sqlite3.connect(service.log.path) as conn:  # the pre-fix record: carol in both roles
        conn.execute(
            "INSERT INTO approvals (prompt, version, role, approver, approved_at) "
            "VALUES ('grounded_qa_system', 1, 'safety', 'carol', ?)",
            ("2026-01-01T00:00:00+00:00",),
        )
    version = store.get("grounded_qa_system", 1)
    assert len(service.missing_approvals(version)) == 1  # carol fills one role, not two
    with pytest.raises(PromotionRefusedError, match="missing approval"):
        service.promote("grounded_qa_system", 1, by="carol")

    service.approve("grounded_qa_system", 1, role="safety", by="bob")
    assert service.missing_approvals(version) == []  # bob: safety, carol: prompt-owner
    revoked = PromotionService(
        store, service.log, ApproverRoles(approvers={"bob": ["safety"], "carol": ["safety"]})
    )
    assert revoked.missing_approvals(version) == ["prompt-owner"]
    with pytest.raises(PromotionRefusedError, match="does not hold role 'prompt-owner'"):
        revoked.approve("grounded_qa_system", 1, role="prompt-owner", by="bob")


def test_production_counts_only_verified_approvals_with_the_roles_the_policy_granted(
    prompt_dir: Path, store: MlflowPromptStore, service: PromotionService
) -> None:
    """Issue 11: an approval records the verified subject and the granting roles; production
    ignores unverified (roles-file) approvals and refuses new ones."""
    _publish_all(prompt_dir, store)
    service.approve("grounded_qa_system", 1, role="prompt-owner", by="alice")  # local, unverified
    production = PromotionService(store, service.log, ApproverRoles(), accept_unverified=False)
    version = store.get("grounded_qa_system", 1)
    assert production.missing_approvals(version) == ["prompt-owner", "safety"]
    with pytest.raises(PromotionRefusedError, match="accepts approvals only from a verified"):
        production.approve("grounded_qa_system", 1, role="safety", by="bob")

    granted = production.approve(
        "grounded_qa_system", 1, role="safety", by="sub-123", granted_roles=["security_architect"]
    )
    assert granted.verified and granted.granted_roles == ("security_architect",)
    with pytest.raises(PromotionRefusedError, match="one approver cannot fill two"):
        production.approve(
            "grounded_qa_system", 1, role="prompt-owner", by="sub-123", granted_roles=["admin"]
        )
    production.approve(
        "grounded_qa_system", 1, role="prompt-owner", by="sub-456", granted_roles=["product_owner"]
    )
    assert production.missing_approvals(version) == []
    event = next(e for e in service.log.events("grounded_qa_system") if e.actor == "sub-456")
    assert event.detail["verified"] is True and event.detail["granted_roles"] == ["product_owner"]
