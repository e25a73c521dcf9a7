"""The serving runtime: model catalogue, embedded models, routing with retries, fallbacks and
circuit breakers, rate limits, memory, context packing and telemetry.

The request workflow composes these; each module is usable on its own. Nothing here imports
Dagster, and nothing downloads weights: embedded models load from installed packages.
"""

from agent_platform.runtime.catalogue import Capability, ModelCatalogue, ModelSpec, default_models
from agent_platform.runtime.circuit_breaker import (
    BreakerState,
    CircuitBreaker,
    CircuitBreakerRegistry,
)
from agent_platform.runtime.config import RuntimeSettings
from agent_platform.runtime.context_window import PackedContext, RetrievedChunk, pack_context
from agent_platform.runtime.performance import PerformanceTracker
from agent_platform.runtime.rate_limit import RateLimiter, RateLimitExceeded
from agent_platform.runtime.router import (
    AllModelsFailedError,
    GarbageResponseError,
    ModelTimeoutError,
    RoutedResponse,
    Router,
)
from agent_platform.runtime.telemetry import RuntimeMetrics, Telemetry

__all__ = [
    "AllModelsFailedError",
    "BreakerState",
    "Capability",
    "CircuitBreaker",
    "CircuitBreakerRegistry",
    "GarbageResponseError",
    "ModelCatalogue",
    "ModelSpec",
    "ModelTimeoutError",
    "PackedContext",
    "PerformanceTracker",
    "RateLimitExceeded",
    "RateLimiter",
    "RetrievedChunk",
    "RoutedResponse",
    "Router",
    "RuntimeMetrics",
    "RuntimeSettings",
    "Telemetry",
    "default_models",
    "pack_context",
]
