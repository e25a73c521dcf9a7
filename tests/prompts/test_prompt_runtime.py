"""`PromptRegistry` at runtime: TTL cache, input validation, pinned parents and A/B variants."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

from agent_platform.prompts import (
    CANDIDATE,
    ApproverRoles,
    MlflowPromptStore,
    PromotionRefusedError,
    PromotionService,
    PromptInputError,
    PromptNotFoundError,
    PromptRegistry,
    PromptRepository,
    ReviewLog,
    publish_prompt,
)
from agent_platform.prompts.ab import AbSplit
from agent_platform.runtime.agent_config import PromptRef
from agent_platform.runtime.prompting import PromptResolver
from agent_platform.settings import Settings

SOURCES = {"sources": [{"title": "Billing FAQ", "text": "Invoices go out monthly."}]}


class ManualClock:
    """A clock the test advances, so TTL expiry is exact instead of slept for."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def live(prompt_dir: Path, store: MlflowPromptStore, prompt_settings, edit):
    """Shipped prompts published twice (v1 in production, v2 approved), plus the services."""
    roles = ApproverRoles(
        approvers={"prompt-owner-lead": ["prompt-owner"], "safety-lead": ["safety"]}
    )
    service = PromotionService(store, ReviewLog.under(prompt_settings.home_dir), roles)
    repo = PromptRepository.from_dirs([prompt_dir])
    for name in repo.names():
        publish_prompt(repo, store, name)
    edit(
        prompt_dir / "base_system.jinja",
        "You are {{ assistant_name }}.",
        "You are {{ assistant_name }}, hi.",
    )
    edit(
        prompt_dir / "base_system.jinja",
        'contains: ["You are Ada."]',
        'contains: ["You are Ada, hi."]',
    )
    edit(
        prompt_dir / "grounded_qa_system.jinja",
        "Write a short, direct answer",
        "Write a direct answer",
    )
    publish_prompt(PromptRepository.from_dirs([prompt_dir]), store, "grounded_qa_system")
    for version in (1, 2):
        for role in ("prompt-owner", "safety"):
            service.approve("grounded_qa_system", version, role=role, by=f"{role}-lead")
    service.promote("grounded_qa_system", 1, by="release")
    return service


def test_cache_ttl_avoids_store_hits_until_expiry(live: PromotionService) -> None:
    clock = ManualClock()
    registry = PromptRegistry(live.store, ttl_seconds=30, clock=clock)
    first = registry.render("grounded_qa_system", SOURCES)
    fetches = registry.store_fetches
    for _ in range(5):
        assert registry.render("grounded_qa_system", SOURCES) == first
    assert registry.store_fetches == fetches  # served from cache

    live.promote("grounded_qa_system", 2, by="release")
    clock.now += 29
    assert registry.render("grounded_qa_system", SOURCES).version == 1  # still cached
    clock.now += 2
    rendered = registry.render("grounded_qa_system", SOURCES)
    assert (rendered.version, rendered.semver) == (2, "1.1.0")
    assert registry.store_fetches > fetches
    assert "Write a direct answer" in rendered.text


def test_parent_is_pinned_to_the_version_a_child_was_built_with(live: PromotionService) -> None:
    registry = PromptRegistry(live.store)
    v1 = registry.get("grounded_qa_system", version=1)
    v2 = registry.get("grounded_qa_system", version=2)
    assert [p.name for p in v1.chain] == ["base_system", "grounded_qa_system"]
    assert v1.render(SOURCES).text.startswith("You are a careful, accurate assistant.\n")
    assert v2.render(SOURCES).text.startswith("You are a careful, accurate assistant, hi.\n")
    assert v2.chain[0].name == "base_system" and "hi." in v2.chain[0].source


def test_render_validates_inputs_against_declared_variables(live: PromotionService) -> None:
    registry = PromptRegistry(live.store)
    with pytest.raises(PromptInputError, match="missing required variable 'sources' \\(list\\)"):
        registry.render("grounded_qa_system", {})
    with pytest.raises(PromptInputError, match="variable 'sources' must be list, got str"):
        registry.render("grounded_qa_system", {"sources": "x"})
    with pytest.raises(PromptInputError, match="unknown variable 'sourcez'"):
        registry.render("grounded_qa_system", {**SOURCES, "sourcez": []})
    text = registry.render("grounded_qa_system", {**SOURCES, "assistant_name": "Ada"}).text
    assert text.startswith("You are Ada.") and "I could not find the answer" in text  # default
    with pytest.raises(PromptNotFoundError, match="no version with alias 'production'"):
        registry.render("grounded_qa_user", {"question": "q"})  # never promoted
    assert (
        registry.render("grounded_qa_user", {"question": "q"}, alias="candidate").text
        == "Question: q"
    )


def test_stale_entry_serves_when_the_store_is_unreachable(
    live: PromotionService, prompt_settings
) -> None:
    clock = ManualClock()
    registry = PromptRegistry(live.store, ttl_seconds=10, clock=clock)
    before = registry.render("grounded_qa_system", SOURCES)
    db = prompt_settings.home_dir / "mlflow" / "mlflow.db"
    db.write_bytes(b"this is not a database" * 512)  # the store breaks under the registry
    clock.now += 60
    fetches = registry.store_fetches
    assert registry.render("grounded_qa_system", SOURCES) == before
    assert registry.store_fetches > fetches  # it did try the store, and fell back
    with pytest.raises(MlflowException):  # nothing cached for this one: the outage surfaces
        registry.render("grounded_qa_user", {"question": "q"}, alias="candidate")


def test_ab_variants_are_stable_split_and_recorded(live: PromotionService, edit) -> None:
    with pytest.raises(PromotionRefusedError, match="between 0 and 1"):
        live.start_ab("grounded_qa_system", 2, traffic=1.5, by="pm")
    live.start_ab("grounded_qa_system", 2, traffic=0.3, by="pm")
    registry = PromptRegistry(live.store)
    split = registry.ab_split("grounded_qa_system")
    assert split == AbSplit("grounded_qa_system", 1, 2, 0.3)

    variants = {
        f"user-{i}": registry.render("grounded_qa_system", SOURCES, subject_id=f"user-{i}")
        for i in range(400)
    }
    challenger = [u for u, r in variants.items() if r.variant == "challenger"]
    assert 0.22 < len(challenger) / len(variants) < 0.38
    assert all(variants[u].version == 2 for u in challenger)
    assert all(r.version == 1 for r in variants.values() if r.variant == "control")
    for user in list(variants)[:50]:  # same subject, same variant, every time and every process
        assert registry.render("grounded_qa_system", SOURCES, subject_id=user) == variants[user]
        assert AbSplit("grounded_qa_system", 1, 2, 0.3).assign(user)[0] == variants[user].variant
    tags = variants[challenger[0]].metrics_tags()
    assert tags == {
        "prompt.name": "grounded_qa_system",
        "prompt.version": "2",
        "prompt.semver": "1.1.0",
        "prompt.variant": "challenger",
    }
    assert "prompt.variant" not in registry.render("grounded_qa_system", SOURCES).metrics_tags()

    live.stop_ab("grounded_qa_system", by="pm")
    registry.invalidate()
    assert registry.ab_split("grounded_qa_system") is None
    assert registry.render("grounded_qa_system", SOURCES, subject_id=challenger[0]).version == 1
    actions = [e.action for e in live.log.events("grounded_qa_system")]
    assert actions[-2:] == ["ab_start", "ab_stop"]


def test_ab_challenger_needs_approvals(live: PromotionService, prompt_dir: Path, edit) -> None:
    edit(prompt_dir / "grounded_qa_system.jinja", "Write a direct answer", "Write an answer")
    publish_prompt(PromptRepository.from_dirs([prompt_dir]), live.store, "grounded_qa_system")
    with pytest.raises(PromotionRefusedError, match="an A/B challenger: missing approval"):
        live.start_ab("grounded_qa_system", 3, traffic=0.1, by="pm")


USER_REF = PromptRef(name="grounded_qa_user")  # published, never promoted (see `live`)
SYSTEM_REF = PromptRef(name="grounded_qa_system")  # v1 in production


def _production_settings(local: Settings, **prompts: object) -> Settings:
    """The `production` profile over the same real MLflow store as `local`."""
    return Settings(
        home=local.home_dir,
        profile="production",
        postgres_url="postgresql://agent@db/agents",
        mlflow_tracking_uri=local.resolved_mlflow_tracking_uri,
        weaviate_url="http://weaviate:8080",
        prompts=prompts,
    )


def _resolver(settings: Settings) -> PromptResolver:
    """The resolver as the runtime assembles it: the fallback policy comes from the settings."""
    return PromptResolver(
        PromptRegistry.from_settings(settings), unpromoted_fallback=settings.prompt_fallback_allowed
    )


def test_local_profile_serves_unpromoted_prompts(live: PromotionService, prompt_settings) -> None:
    assert prompt_settings.profile == "local" and prompt_settings.prompt_fallback_allowed
    resolver = _resolver(prompt_settings)
    prompt, alias, _ = resolver.resolve(USER_REF)
    assert (prompt.name, prompt.version, alias) == ("grounded_qa_user", 1, "candidate")
    assert resolver.resolve(SYSTEM_REF)[1:] == ("production", None)

    live.store.delete_alias("grounded_qa_user", CANDIDATE)
    resolver = _resolver(prompt_settings)
    prompt, alias, _ = resolver.resolve(USER_REF)
    assert (prompt.version, alias) == (1, "latest")


def test_production_profile_refuses_unpromoted_prompts(
    live: PromotionService, prompt_settings
) -> None:
    production = _production_settings(prompt_settings)
    assert not production.prompt_fallback_allowed
    resolver = _resolver(production)
    with pytest.raises(PromptNotFoundError) as refused:
        resolver.resolve(USER_REF)
    message = str(refused.value)
    assert "prompt 'grounded_qa_user' has no version with alias 'production'" in message
    assert "agent-platform prompts promote grounded_qa_user VERSION" in message
    prompt, alias, _ = resolver.resolve(SYSTEM_REF)
    assert (prompt.version, alias) == (1, "production")  # promoted prompts still serve
    with pytest.raises(PromptNotFoundError, match="alias 'staging'"):
        resolver.resolve(PromptRef(name="grounded_qa_system", alias="staging"))

    live.approve("grounded_qa_user", 1, role="prompt-owner", by="prompt-owner-lead")
    live.promote("grounded_qa_user", 1, by="release")
    resolver = _resolver(production)
    assert resolver.resolve(USER_REF)[1] == "production"

    allowed = _production_settings(prompt_settings, unpromoted_fallback=True)
    live.store.delete_alias("grounded_qa_user", "production")
    resolver = _resolver(allowed)
    assert resolver.resolve(USER_REF)[1] == "candidate"  # an explicit opt-in is honoured


def test_latest_fallback_is_cached_with_the_ttl(live: PromotionService) -> None:
    live.store.delete_alias("grounded_qa_user", CANDIDATE)
    clock = ManualClock()
    registry = PromptRegistry(live.store, ttl_seconds=30, clock=clock)
    resolver = PromptResolver(registry, unpromoted_fallback=True)
    assert resolver.resolve(USER_REF)[0].version == 1
    v1 = live.store.get("grounded_qa_user", 1)
    live.store.register("grounded_qa_user", v1.template.replace("Question:", "Q:"), v1.tags, "v2")
    fetches = registry.store_fetches
    for _ in range(3):
        prompt, alias, _ = resolver.resolve(USER_REF)
        assert (prompt.version, alias) == (1, "latest")  # the newest version is cached
    assert registry.store_fetches == fetches
    clock.now += 31
    assert resolver.resolve(USER_REF)[0].version == 2


def test_runtime_library_does_not_import_dagster() -> None:
    code = (
        "import sys, agent_platform.prompts, agent_platform.cli.prompts\n"
        "assert 'dagster' not in sys.modules, [m for m in sys.modules if 'dagster' in m]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
