"""The model catalogue: what each model costs, how much it reads, what it can do, how to build it.

Embedded models (`provider="embedded"`) run in-process with no network and no keys. Any other
provider is built with `langchain.chat_models.init_chat_model`, which imports the provider's
integration package (e.g. `langchain-openai`) only when such a model is used, so hosted providers
are optional extras. Keys come from the environment variable the spec names, never from config.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from agent_platform.runtime.config import RuntimeSettings

EMBEDDED_PROVIDER = "embedded"


class Capability(StrEnum):
    """What a model can be asked to do; routes filter on these."""

    CHAT = "chat"
    GROUNDED_QA = "grounded_qa"
    GENERATION = "generation"
    TOOL_CALLING = "tool_calling"
    JSON_OUTPUT = "json_output"
    LONG_CONTEXT = "long_context"


class ModelSpec(BaseModel):
    """One catalogue entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._:-]+$", description="Catalogue id.")
    provider: str = Field(
        min_length=1, description="'embedded' or an init_chat_model provider (openai, anthropic…)."
    )
    model: str = Field(min_length=1, description="The provider's model name.")
    input_price_per_1k: float = Field(default=0.0, ge=0, description="USD per 1k input tokens.")
    output_price_per_1k: float = Field(default=0.0, ge=0, description="USD per 1k output tokens.")
    context_window: int = Field(ge=256, description="Tokens the model reads, prompt + output.")
    capabilities: frozenset[Capability] = frozenset({Capability.CHAT})
    quality_prior: float = Field(
        default=0.5, ge=0, le=1, description="Quality score before any is measured."
    )
    latency_prior_ms: float = Field(
        default=1000.0, gt=0, description="Latency assumed before any is measured."
    )
    max_p95_latency_ms: float | None = Field(
        default=None, gt=0, description="Breaker latency threshold for this model (None: default)."
    )
    api_key_env: str | None = Field(
        default=None, description="Environment variable holding the API key."
    )
    base_url: str | None = None
    params: dict[str, Any] = Field(
        default_factory=dict, description="Extra constructor arguments (temperature, timeout…)."
    )

    @field_validator("provider")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @property
    def embedded(self) -> bool:
        return self.provider == EMBEDDED_PROVIDER

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for one call with these token counts."""
        return (
            input_tokens * self.input_price_per_1k + output_tokens * self.output_price_per_1k
        ) / 1000.0


def default_models() -> list[ModelSpec]:
    """The two embedded models every deployment has; hosted ones are added by configuration."""
    return [
        ModelSpec(
            name="extractive",
            provider=EMBEDDED_PROVIDER,
            model="extractive",
            context_window=16_384,
            capabilities=frozenset({Capability.GROUNDED_QA}),
            quality_prior=0.6,
            latency_prior_ms=5.0,
        ),
        ModelSpec(
            name="gemma-3-270m",
            provider=EMBEDDED_PROVIDER,
            model="gemma-3-270m",
            context_window=32_768,
            capabilities=frozenset(
                {Capability.CHAT, Capability.GENERATION, Capability.GROUNDED_QA}
            ),
            quality_prior=0.3,
            latency_prior_ms=5_000.0,
            max_p95_latency_ms=60_000.0,
            params={"max_new_tokens": 64},
        ),
    ]


class UnknownModelError(KeyError):
    """A model name that is not in the catalogue."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        super().__init__(f"model {name!r} is not in the catalogue (known: {sorted(known)})")

    def __str__(self) -> str:
        return str(self.args[0])


class MissingCredentialsError(RuntimeError):
    """A hosted model whose API key variable is not set."""


class ModelCatalogue:
    """Specs by name, and the chat models built from them (built once, then reused)."""

    def __init__(self, specs: Iterable[ModelSpec], *, model_cache_dir: Path | None = None) -> None:
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"models: duplicate model name {spec.name!r}")
            self._specs[spec.name] = spec
        self._cache_dir = model_cache_dir
        self._built: dict[str, BaseChatModel] = {}

    @classmethod
    def from_settings(
        cls, runtime: RuntimeSettings, home_dir: Path | None = None
    ) -> ModelCatalogue:
        """From `RuntimeSettings` (models and cache dir; cache under `home_dir` by default)."""
        cache = runtime.model_cache_dir or (home_dir / "models" if home_dir else None)
        return cls(runtime.models, model_cache_dir=cache)

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs.values())

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len(self._specs)

    @property
    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, name: str) -> ModelSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownModelError(name, self._specs) from None

    def with_capability(self, capability: Capability) -> list[ModelSpec]:
        return [s for s in self._specs.values() if capability in s.capabilities]

    def register_model(self, name: str, model: BaseChatModel) -> None:
        """Use an already built chat model for a catalogue entry (e.g. a preconfigured client)."""
        self.get(name)
        self._built[name] = model

    def chat_model(self, name: str) -> BaseChatModel:
        """The LangChain chat model for `name`, built on first use."""
        if name not in self._built:
            self._built[name] = build_chat_model(self.get(name), model_cache_dir=self._cache_dir)
        return self._built[name]


def build_chat_model(spec: ModelSpec, *, model_cache_dir: Path | None = None) -> BaseChatModel:
    """Construct the chat model a spec describes. Embedded models load their weights lazily."""
    if spec.embedded:
        return _build_embedded(spec, model_cache_dir)
    from langchain.chat_models import init_chat_model

    kwargs: dict[str, Any] = dict(spec.params)
    if spec.api_key_env:
        key = os.environ.get(spec.api_key_env)
        if not key:
            raise MissingCredentialsError(
                f"model {spec.name!r}: environment variable {spec.api_key_env} is not set"
            )
        kwargs["api_key"] = key
    if spec.base_url:
        kwargs["base_url"] = spec.base_url
    try:
        model: BaseChatModel = init_chat_model(spec.model, model_provider=spec.provider, **kwargs)
        return model
    except ImportError as exc:
        raise ImportError(
            f"model {spec.name!r}: provider {spec.provider!r} needs its LangChain integration "
            f"package ({exc})"
        ) from exc


def _build_embedded(spec: ModelSpec, model_cache_dir: Path | None) -> BaseChatModel:
    if spec.model == "extractive":
        from agent_platform.runtime.models.extractive import ExtractiveAnswerer

        return ExtractiveAnswerer(**spec.params)
    if spec.model == "gemma-3-270m":
        from agent_platform.runtime.models.gemma import GemmaChatModel

        return GemmaChatModel(cache_dir=model_cache_dir, **spec.params)
    raise ValueError(
        f"model {spec.name!r}: unknown embedded model {spec.model!r} "
        "(embedded models: 'extractive', 'gemma-3-270m')"
    )
