"""Model-call threads under a hung provider: a local OpenAI-compatible server that hangs, reached
through the real ChatOpenAI, ten requests at once (the default number of model slots)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from agent_platform.runtime.catalogue import ModelCatalogue, ModelSpec, default_models
from agent_platform.runtime.config import RetrySettings, RouteSettings
from agent_platform.runtime.router import Router
from agent_platform.runtime.sources import format_sources
from tests.runtime.conftest import hosted

SLOTS = 10
MESSAGES = [
    SystemMessage(format_sources([("policy.md", "Refunds are accepted within 30 days.")])),
    HumanMessage("How many days do I have to ask for a refund?"),
]


def router_for(base_url: str, route: list[str], retry: RetrySettings) -> Router:
    backup = ModelSpec(name="backup", provider="fake", model="fake", context_window=8192)
    catalogue = ModelCatalogue([*default_models(), hosted(base_url), backup])
    catalogue.register_model("backup", FakeListChatModel(responses=["Within 30 days [1]."]))
    catalogue.chat_model("hosted")  # import langchain-openai before the clock matters
    return Router(catalogue, routes={"default": RouteSettings(models=route)}, retry=retry)


def at_once(router: Router, n: int = SLOTS) -> list:
    with ThreadPoolExecutor(n) as callers:
        return list(callers.map(lambda _: router.invoke(MESSAGES), range(n)))


HUNG = RetrySettings(attempts=2, initial_delay_s=0.01, max_delay_s=0.02, timeout_s=0.3)


def test_hung_calls_do_not_starve_the_extractive_fallback(fake_openai) -> None:
    fake_openai.script, fake_openai.hang_s = ["hang"], 2.0
    router = router_for(fake_openai.base_url, ["hosted", "extractive"], HUNG)
    responses = at_once(router)  # 20 timed-out hosted calls keep their threads for 2 s
    assert [r.model for r in responses] == ["extractive"] * SLOTS
    assert all("30 days" in r.text for r in responses)
    assert fake_openai.requests >= SLOTS
    router.close()


def test_a_hung_provider_holds_only_its_own_threads(fake_openai) -> None:
    fake_openai.script, fake_openai.hang_s = ["hang"], 2.0
    router = router_for(fake_openai.base_url, ["hosted", "backup"], HUNG)
    responses = at_once(router)
    assert [r.model for r in responses] == ["backup"] * SLOTS  # no timeout queueing behind it
    router.close()


def test_as_many_hosted_calls_run_at_once_as_there_are_slots(fake_openai) -> None:
    fake_openai.script, fake_openai.hang_s = ["hang"], 1.5
    retry = RetrySettings(attempts=1, timeout_s=8)
    router = router_for(fake_openai.base_url, ["hosted"], retry)
    responses = at_once(router)
    assert [r.model for r in responses] == ["hosted"] * SLOTS
    assert fake_openai.peak_in_flight == SLOTS  # none waited for a thread
    router.close()
