"""Runtime settings and the model catalogue: defaults, environment, TOML, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from pydantic import ValidationError

from agent_platform.runtime.catalogue import (
    Capability,
    MissingCredentialsError,
    ModelCatalogue,
    ModelSpec,
    UnknownModelError,
    build_chat_model,
)
from agent_platform.runtime.config import RuntimeSettings


def test_defaults_match_the_spec(settings) -> None:
    runtime = RuntimeSettings()
    assert [m.name for m in runtime.models] == ["extractive", "gemma-3-270m"]
    assert (runtime.retry.attempts, runtime.retry.initial_delay_s) == (3, 1.0)
    assert (runtime.retry.multiplier, runtime.retry.max_delay_s) == (2.0, 10.0)
    b = runtime.breaker
    assert (b.window_s, b.min_requests, b.max_error_rate, b.max_p95_latency_ms) == (
        60,
        100,
        0.05,
        500,
    )
    assert (runtime.context.max_tokens, runtime.context.reserve_output_tokens) == (16_000, 512)
    catalogue = ModelCatalogue.from_settings(runtime, settings.home_dir)
    assert catalogue.with_capability(Capability.GROUNDED_QA)[0].name == "extractive"
    assert catalogue.get("extractive").cost(1000, 1000) == 0


def test_environment_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "platform.toml"
    config.write_text(
        """
profile = "local"

[runtime.retry]
attempts = 5

[runtime.rate_limits]
user_requests_per_minute = 7

[[runtime.models]]
name = "extractive"
provider = "embedded"
model = "extractive"
context_window = 16384
capabilities = ["grounded_qa"]

[[runtime.models]]
name = "gpt-4o-mini"
provider = "openai"
model = "gpt-4o-mini"
input_price_per_1k = 0.00015
output_price_per_1k = 0.0006
context_window = 128000
capabilities = ["chat", "grounded_qa", "tool_calling"]
api_key_env = "OPENAI_API_KEY"

[runtime.routes.default]
models = ["gpt-4o-mini", "extractive"]
strategy = "intelligent"
"""
    )
    monkeypatch.setenv("AGENT_PLATFORM_CONFIG_FILE", str(config))
    monkeypatch.setenv("AGENT_PLATFORM_RUNTIME_RETRY__TIMEOUT_S", "12.5")
    runtime = RuntimeSettings()
    assert runtime.retry.attempts == 5 and runtime.retry.timeout_s == 12.5
    assert runtime.rate_limits.user_requests_per_minute == 7
    assert runtime.routes["default"].strategy == "intelligent"
    spec = ModelCatalogue(runtime.models).get("gpt-4o-mini")
    assert spec.cost(1000, 1000) == pytest.approx(0.00075)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY is not set"):
        build_chat_model(spec)


def test_bad_configuration_names_the_field() -> None:
    with pytest.raises(ValidationError, match="context_window"):
        ModelSpec(name="x", provider="openai", model="m", context_window=10)
    with pytest.raises(ValidationError, match="input_price_per_1k"):
        ModelSpec(
            name="x", provider="openai", model="m", context_window=4096, input_price_per_1k=-1
        )
    with pytest.raises(ValidationError, match=r"routes.default.models: unknown models \['nope'\]"):
        RuntimeSettings(routes={"default": {"models": ["nope"]}})
    with pytest.raises(ValidationError, match="duplicate model names"):
        RuntimeSettings(
            models=[
                ModelSpec(name="a", provider="embedded", model="extractive", context_window=1024)
            ]
            * 2
        )
    with pytest.raises(UnknownModelError, match="model 'ghost' is not in the catalogue"):
        ModelCatalogue([]).get("ghost")
    with pytest.raises(ValueError, match="unknown embedded model 'tiny'"):
        build_chat_model(
            ModelSpec(name="t", provider="embedded", model="tiny", context_window=1024)
        )


def test_hosted_model_is_built_by_init_chat_model(fake_openai) -> None:
    spec = ModelSpec(
        name="hosted",
        provider="openai",
        model="fake-gpt",
        context_window=8192,
        base_url=fake_openai.base_url,
        api_key_env="FAKE_OPENAI_API_KEY",
        params={"max_retries": 0},
    )
    model = build_chat_model(spec)
    assert type(model).__name__ == "ChatOpenAI"
    assert model.invoke([HumanMessage("hi")]).content == "Hosted answer."
