"""The serving runtime: model catalogue, embedded models, routing with retries, fallbacks and
circuit breakers, rate limits, memory, context packing and telemetry.

The request workflow (`workflow.py`, a LangGraph StateGraph) composes these behind
`AgentRuntime` (`agent.py`); each module is usable on its own. Nothing here imports Dagster, and
nothing downloads weights: embedded models load from installed packages. `AgentRuntime` is
imported lazily (it pulls in the prompt registry, hence MLflow).
"""

from typing import TYPE_CHECKING, Any

from agent_platform.runtime.agent_config import AgentConfig, PromptRef, RetrievalConfig
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
from agent_platform.runtime.response import AgentRequest, AgentResponse, Citation
from agent_platform.runtime.router import (
    AllModelsFailedError,
    GarbageResponseError,
    ModelTimeoutError,
    RoutedResponse,
    Router,
)
from agent_platform.runtime.telemetry import RuntimeMetrics, Telemetry

if TYPE_CHECKING:
    from agent_platform.runtime.agent import AgentRuntime


def __getattr__(name: str) -> Any:
    if name == "AgentRuntime":
        from agent_platform.runtime.agent import AgentRuntime

        return AgentRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AgentConfig",
    "AgentRequest",
    "AgentResponse",
    "AgentRuntime",
    "AllModelsFailedError",
    "BreakerState",
    "Capability",
    "CircuitBreaker",
    "CircuitBreakerRegistry",
    "Citation",
    "GarbageResponseError",
    "ModelCatalogue",
    "ModelSpec",
    "ModelTimeoutError",
    "PackedContext",
    "PerformanceTracker",
    "PromptRef",
    "RateLimitExceeded",
    "RateLimiter",
    "RetrievalConfig",
    "RetrievedChunk",
    "RoutedResponse",
    "Router",
    "RuntimeMetrics",
    "RuntimeSettings",
    "Telemetry",
    "default_models",
    "pack_context",
]
