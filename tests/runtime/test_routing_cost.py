"""Cost-aware routing: the measured length of a model's answers, not only its catalogue prices,
orders the `cost` and `intelligent` strategies. The hosted models are LangChain fake chat models."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage

from agent_platform.runtime.catalogue import ModelCatalogue, ModelSpec
from agent_platform.runtime.router import Router
from agent_platform.runtime.telemetry import Telemetry


def priced(name: str, price_per_1k: float, output_price_per_1k: float | None = None) -> ModelSpec:
    return ModelSpec(
        name=name,
        provider="fake",
        model=name,
        context_window=8192,
        input_price_per_1k=price_per_1k,
        output_price_per_1k=price_per_1k if output_price_per_1k is None else output_price_per_1k,
    )


def order(
    router: Router,
    strategy: str,
    prompt_tokens: int = 20,
    names: tuple[str, ...] = ("verbose", "terse"),
) -> list[str]:
    return [s.name for s in router.rank(names, strategy, prompt_tokens=prompt_tokens)]  # type: ignore[arg-type]


QUESTION = [HumanMessage("How many days do I have to ask for a refund?")]


def test_a_model_whose_measured_cost_is_higher_ranks_lower() -> None:
    # The catalogue says `verbose` is cheaper; its long answers make each call cost more.
    catalogue = ModelCatalogue([priced("verbose", 1.0), priced("terse", 1.5)])
    catalogue.register_model("verbose", FakeListChatModel(responses=["word " * 400]))
    catalogue.register_model("terse", FakeListChatModel(responses=["Thirty days."]))
    telemetry = Telemetry.disabled()
    router = Router(catalogue, telemetry=telemetry)
    assert order(router, "cost") == ["verbose", "terse"]  # prices only: 276 tokens each

    calls = {
        name: router.invoke(QUESTION, models=[name], tenant="acme") for name in ("verbose", "terse")
    }
    assert calls["verbose"].cost_usd > calls["terse"].cost_usd
    assert order(router, "cost") == ["terse", "verbose"]
    # The measured cost scales with the prompt, so a long prompt still favours cheaper tokens.
    assert order(router, "cost", prompt_tokens=6000) == ["verbose", "terse"]
    for name, call in calls.items():
        exported = telemetry.metrics.value(
            "agent_platform_model_cost_usd_total", {"model": name, "tenant": "acme"}
        )
        assert exported == pytest.approx(call.cost_usd)
    router.close()


def test_measured_cost_decides_between_otherwise_equal_models() -> None:
    router = Router(ModelCatalogue([priced("verbose", 1.0), priced("terse", 1.0)]))
    assert order(router, "intelligent") == ["verbose", "terse"]  # a tie keeps the route's order
    for _ in range(3):  # same latency and tokens in; the verbose model answers at length
        router.performance.record_success("verbose", 0.2, 400)
        router.performance.record_success("terse", 0.2, 5)
    assert order(router, "intelligent") == ["terse", "verbose"]
    assert order(router, "cost") == ["terse", "verbose"]


def test_a_long_prompt_is_priced_at_the_input_price() -> None:
    # Both answer at the same length; `output-heavy` bills output at 3x its input price, `flat`
    # bills both at 2. A short question is dominated by the answer, a long prompt by its input.
    catalogue = ModelCatalogue([priced("output-heavy", 1.0, 3.0), priced("flat", 2.0)])
    for name in ("output-heavy", "flat"):
        catalogue.register_model(name, FakeListChatModel(responses=["word " * 400]))
    router = Router(catalogue)
    calls = {name: router.invoke(QUESTION, models=[name]) for name in ("output-heavy", "flat")}
    assert calls["output-heavy"].output_tokens == calls["flat"].output_tokens
    assert calls["output-heavy"].cost_usd > calls["flat"].cost_usd
    names = ("output-heavy", "flat")
    assert order(router, "cost", names=names) == ["flat", "output-heavy"]
    # 6000 prompt tokens: 6.0 + 1.2 (measured output at 3.0) USD against 12.0 + 0.8 USD.
    assert order(router, "cost", prompt_tokens=6000, names=names) == ["output-heavy", "flat"]
    router.close()
