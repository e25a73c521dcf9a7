"""Configuration of the serving runtime: catalogue, routing, limits, memory, context, telemetry.

Kept apart from `agent_platform.settings.Settings` (which only knows deployment backends) so the
runtime can be tuned without touching it. Sources, highest first: keyword arguments, environment
variables with prefix `AGENT_PLATFORM_RUNTIME_` (nested with `__`, e.g.
`AGENT_PLATFORM_RUNTIME_RATE_LIMITS__USER_REQUESTS_PER_MINUTE=50`), then the `[runtime]` table of
the TOML file named by `AGENT_PLATFORM_CONFIG_FILE`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from agent_platform.runtime.catalogue import ModelSpec, default_models
from agent_platform.settings import (
    ConfigError,
    Profile,
    check_keys,
    load_config_file,
    settings_file,
)

RoutingStrategy = Literal["ordered", "cost", "latency", "quality", "intelligent"]
StorageBackend = Literal["local", "redis"]
DatabaseBackend = Literal["sqlite", "postgres"]
ExporterKind = Literal["none", "console", "jsonfile", "otlp"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySettings(_Section):
    """Retries of one model before falling back to the next (tenacity exponential backoff)."""

    attempts: int = Field(default=3, ge=1, le=20)
    initial_delay_s: float = Field(default=1.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_delay_s: float = Field(default=10.0, ge=0)
    timeout_s: float = Field(default=30.0, gt=0, description="Wall-clock limit of one model call.")


class BreakerSettings(_Section):
    """When a model's circuit opens, and how it recovers."""

    window_s: float = Field(default=60.0, gt=0)
    min_requests: int = Field(default=100, ge=1)
    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    max_p95_latency_ms: float = Field(default=500.0, gt=0)
    cooldown_s: float = Field(default=30.0, ge=0)
    half_open_max_probes: int = Field(default=3, ge=1)
    half_open_successes_to_close: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _probes_can_close(self) -> BreakerSettings:
        if self.half_open_successes_to_close > self.half_open_max_probes:
            raise ValueError(
                f"half_open_successes_to_close ({self.half_open_successes_to_close}) must not "
                f"exceed half_open_max_probes ({self.half_open_max_probes})"
            )
        return self


class RateLimitSettings(_Section):
    """Requests and tokens per minute, globally, per user and per model."""

    backend: StorageBackend | None = Field(
        default=None, description="None: redis when redis_url is set, else local."
    )
    global_requests_per_minute: int = Field(default=10_000, ge=1)
    global_tokens_per_minute: int = Field(default=1_000_000, ge=1)
    user_requests_per_minute: int = Field(default=100, ge=1)
    user_tokens_per_minute: int = Field(default=10_000, ge=1)
    model_requests_per_minute: int = Field(default=1_000, ge=1)
    model_tokens_per_minute: int = Field(default=100_000, ge=1)
    redis_key_prefix: str = Field(default="agent-platform:ratelimit", min_length=1)


class MemorySettings(_Section):
    """Lifetimes and sizes of the memory layers."""

    short_term_backend: StorageBackend | None = Field(
        default=None, description="None: redis when redis_url is set, else local (SQLite)."
    )
    working_backend: DatabaseBackend | None = Field(
        default=None, description="None: postgres when postgres_url is set, else sqlite."
    )
    short_term_ttl_s: float = Field(default=3600.0, gt=0)
    short_term_max_items: int = Field(default=50, ge=1)
    working_retention_s: float = Field(default=24 * 3600.0, gt=0)
    postgres_schema: str = Field(default="agent_runtime", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    redis_key_prefix: str = Field(default="agent-platform:stm")


class ContextSettings(_Section):
    """How a prompt is packed into a model's window. The relevance threshold of retrieved chunks
    belongs to each agent configuration (`AgentConfig.retrieval.min_relevance`), not here."""

    max_tokens: int = Field(default=16_000, ge=256)
    reserve_output_tokens: int = Field(default=512, ge=0)
    max_chunk_share: float = Field(default=0.6, gt=0, le=1)


OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class SamplingSettings(_Section):
    """Adaptive trace sampling (runtime/sampling.py): every error and every slow request kept,
    the rest at a rate that is `max_rate` at low traffic and falls to `base_rate` at high."""

    enabled: bool | None = Field(
        default=None,
        description="None: on in the production profile, off in local (where every trace is "
        "kept for debugging).",
    )
    base_rate: float = Field(default=0.01, gt=0, le=1, description="The floor at high traffic.")
    max_rate: float = Field(default=1.0, gt=0, le=1, description="The rate at low traffic.")
    latency_threshold_ms: float = Field(
        default=500.0, gt=0, description="A request at least this slow is always kept."
    )
    target_traces_per_second: float = Field(
        default=10.0,
        gt=0,
        description="Fast, successful traces kept per second: below this traffic every trace "
        "is kept, above it the rate is target/traffic (not below base_rate).",
    )
    traffic_window_s: float = Field(
        default=60.0, gt=0, description="Time constant of the traffic estimate."
    )
    max_pending_traces: int = Field(
        default=10_000, ge=1, description="Unfinished traces held before the oldest is decided."
    )

    @model_validator(mode="after")
    def _base_below_max(self) -> SamplingSettings:
        if self.base_rate > self.max_rate:
            raise ValueError(
                f"base_rate ({self.base_rate}) must not exceed max_rate ({self.max_rate})"
            )
        return self

    def active(self, profile: Profile) -> bool:
        """Whether traces are sampled in `profile`."""
        return self.enabled if self.enabled is not None else profile == "production"


class TelemetrySettings(_Section):
    """Where traces go. Metrics are always kept in a dedicated Prometheus registry."""

    exporter: ExporterKind | None = Field(
        default=None,
        description="None: 'jsonfile' in the local profile, 'otlp' in production (which then "
        "needs an endpoint).",
    )
    service_name: str = "agent-platform"
    otlp_endpoint: str | None = Field(
        default=None,
        description="Full URL of the OTLP/HTTP traces endpoint (…/v1/traces). None: the standard "
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces.",
    )
    json_path: Path | None = Field(default=None, description="None: <home>/telemetry/traces.jsonl")
    mlflow_traces: bool | None = Field(
        default=None,
        description="Also log traces to the MLflow store, linked to the served agent version. "
        "None: on in the local profile when the runtime serves a registered version.",
    )
    sampling: SamplingSettings = Field(
        default_factory=SamplingSettings,
        description="Adaptive sampling of the traces sent to `exporter` (not those to MLflow).",
    )

    def mlflow_enabled(self, profile: Profile, *, serving_version: bool) -> bool:
        """Whether traces also go to MLflow (in addition to `exporter`)."""
        if self.mlflow_traces is not None:
            return self.mlflow_traces
        return profile == "local" and serving_version

    @property
    def otlp_configured(self) -> bool:
        """Whether an OTLP endpoint is set here or by the standard OpenTelemetry variables."""
        return bool(self.otlp_endpoint) or any(os.environ.get(v) for v in OTLP_ENDPOINT_VARIABLES)

    @model_validator(mode="after")
    def _otlp_needs_endpoint(self) -> TelemetrySettings:
        if self.exporter == "otlp" and not self.otlp_configured:
            raise ValueError(
                "telemetry.exporter 'otlp' needs telemetry.otlp_endpoint or the "
                "OTEL_EXPORTER_OTLP_ENDPOINT environment variable"
            )
        return self

    def resolved_exporter(self, profile: Profile) -> ExporterKind:
        """The exporter to use in `profile` (required: a forgotten one must not mean local files);
        production refuses to run without its collector."""
        if profile not in get_args(Profile):
            raise ValueError(f"profile: unknown profile {profile!r} (local, production)")
        if self.exporter is not None:
            return self.exporter
        if profile == "local":
            return "jsonfile"
        if not self.otlp_configured:
            raise ValueError(
                "telemetry: profile 'production' exports traces by OTLP, but no endpoint is set; "
                "set OTEL_EXPORTER_OTLP_ENDPOINT (or "
                "AGENT_PLATFORM_RUNTIME_TELEMETRY__OTLP_ENDPOINT), or choose "
                "AGENT_PLATFORM_RUNTIME_TELEMETRY__EXPORTER explicitly"
            )
        return "otlp"


PiiAnswerPolicy = Literal["mask", "refuse"]
InjectionPolicy = Literal["drop", "quote"]


class TenantProtection(_Section):
    """One tenant's data-protection policy; a field left unset keeps the runtime-wide value."""

    pii_answers: PiiAnswerPolicy | None = None
    injected_chunks: InjectionPolicy | None = None


class ProtectionSettings(_Section):
    """PII in answers and instructions hidden in retrieved text (docs/data-protection-pii.md)."""

    pii_answers: PiiAnswerPolicy = Field(
        default="mask",
        description="An answer holding personal data: 'mask' each value as <ENTITY_TYPE>, or "
        "'refuse' the answer.",
    )
    injected_chunks: InjectionPolicy = Field(
        default="drop",
        description="A retrieved chunk that gives the model or the reader orders: 'drop' it, or "
        "'quote' it to the model with a warning.",
    )
    spacy_model: str | None = Field(
        default="en_core_web_lg",
        description="spaCy pipeline for PERSON/LOCATION, used only when installed (none is by "
        "default; the pattern recognizers then run on a blank pipeline).",
    )
    tenants: dict[str, TenantProtection] = Field(
        default_factory=dict, description="Per-tenant overrides, by tenant name."
    )

    def pii_policy(self, tenant: str) -> PiiAnswerPolicy:
        override = self.tenants.get(tenant)
        return (override.pii_answers if override else None) or self.pii_answers

    def injection_policy(self, tenant: str) -> InjectionPolicy:
        override = self.tenants.get(tenant)
        return (override.injected_chunks if override else None) or self.injected_chunks


class RouteSettings(_Section):
    """A named route: candidate models (the fallback chain) and how to order them."""

    models: list[str] = Field(min_length=1)
    strategy: RoutingStrategy = "ordered"


def _default_routes() -> dict[str, RouteSettings]:
    return {"default": RouteSettings(models=["extractive", "gemma-3-270m"], strategy="ordered")}


class RuntimeSettings(BaseSettings):
    """Every knob of the serving runtime."""

    model_config = SettingsConfigDict(
        env_prefix="AGENT_PLATFORM_RUNTIME_", env_nested_delimiter="__", extra="ignore"
    )

    models: list[ModelSpec] = Field(default_factory=default_models)
    routes: dict[str, RouteSettings] = Field(default_factory=_default_routes)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    protection: ProtectionSettings = Field(default_factory=ProtectionSettings)
    model_cache_dir: Path | None = Field(
        default=None, description="None: <home>/models (converted embedded weights)."
    )

    @model_validator(mode="after")
    def _routes_name_known_models(self) -> RuntimeSettings:
        names = [m.name for m in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"models: duplicate model names {duplicates}")
        for route_name, route in self.routes.items():
            unknown = [m for m in route.models if m not in names]
            if unknown:
                raise ValueError(
                    f"routes.{route_name}.models: unknown models {unknown}; catalogue has {names}"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _RuntimeTomlTable(settings_cls))


class _RuntimeTomlTable(PydanticBaseSettingsSource):
    """The `[runtime]` table of AGENT_PLATFORM_CONFIG_FILE (the rest belongs to `Settings`)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = settings_file()
        if path is None:
            return {}
        table = load_config_file(path).get("runtime", {})
        if not isinstance(table, dict):
            raise ConfigError(f"settings file {path}: [runtime] must be a table")
        check_keys(table, RuntimeSettings, path, "runtime.")
        return table
