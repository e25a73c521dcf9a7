"""Build the services of an `AgentRuntime` from settings: telemetry, limits, catalogue and router,
knowledge, prompts, the memory layers and the gatekeeper (backends follow `Settings`).

Long-term memory gets its own store, opened on the memory namespace: never the knowledge store."""

from __future__ import annotations

from agent_platform.knowledge.service import KnowledgeBase
from agent_platform.prompts import PromptRegistry
from agent_platform.prompts.first_use import FirstUsePublisher
from agent_platform.runtime.access import AccessPolicy, Gatekeeper
from agent_platform.runtime.agent_config import AgentConfig
from agent_platform.runtime.catalogue import ModelCatalogue
from agent_platform.runtime.config import RuntimeSettings
from agent_platform.runtime.long_term import DEFAULT_MIN_SCORE, VectorLongTermMemory
from agent_platform.runtime.memory import (
    build_conversation_store,
    build_short_term_memory,
    build_working_memory,
)
from agent_platform.runtime.phases import AgentServices, ModelSlots
from agent_platform.runtime.prompting import PromptResolver
from agent_platform.runtime.rate_limit import RateLimiter
from agent_platform.runtime.router import Router
from agent_platform.runtime.telemetry import Telemetry
from agent_platform.security.crypto import value_cipher
from agent_platform.settings import Settings
from agent_platform.tenants import TenantRegistry
from agent_platform.vectorstore.factory import open_vector_store
from agent_platform.vectorstore.namespaces import StoreNamespace


def build_services(
    settings: Settings,
    agent: AgentConfig,
    runtime: RuntimeSettings,
    *,
    knowledge: KnowledgeBase | None = None,
    access: AccessPolicy | None = None,
    max_concurrent_model_calls: int = 10,
    model_id: str = "",
) -> AgentServices:
    """Rate limits in Redis when configured (or `redis_url` is set), else in process; the access
    policy from `<home>/runtime/access.json` unless one is given."""
    home = settings.home_dir
    telemetry = Telemetry.from_settings(
        runtime.telemetry,
        home,
        profile=settings.profile,
        mlflow_tracking_uri=settings.resolved_mlflow_tracking_uri,
        agent=agent.name,
        model_id=model_id,
    )
    limits = runtime.rate_limits
    on_refusal = lambda exc: telemetry.metrics.rate_limited(exc.scope)  # noqa: E731
    use_redis = (limits.backend or ("redis" if settings.redis_url else "local")) == "redis"
    if use_redis and settings.redis_url:
        limiter = RateLimiter.redis(
            settings.redis_url, limits, key_prefix=limits.redis_key_prefix, on_refusal=on_refusal
        )
    else:
        limiter = RateLimiter.local(limits, on_refusal=on_refusal)
    catalogue = ModelCatalogue.from_settings(runtime, home)
    router = Router.from_settings(
        runtime,
        catalogue,
        rate_limiter=limiter,
        telemetry=telemetry,
        max_concurrent_calls=max_concurrent_model_calls,
    )
    knowledge = knowledge or KnowledgeBase(settings)
    registry = PromptRegistry.from_settings(settings)
    services = AgentServices(
        agent=agent,
        runtime=runtime,
        knowledge=knowledge,
        router=router,
        prompts=PromptResolver(
            registry,
            unpromoted_fallback=settings.prompt_fallback_allowed,
            publisher=_first_use_publisher(settings, registry),
        ),
        conversation=build_conversation_store(settings, runtime),
        working=build_working_memory(settings, runtime),
        short_term=build_short_term_memory(settings, runtime),
        long_term=VectorLongTermMemory(
            open_vector_store(settings, StoreNamespace.MEMORY),
            knowledge.embedder,
            min_score=DEFAULT_MIN_SCORE,
            cipher=value_cipher(settings),
        ),
        gatekeeper=Gatekeeper(
            TenantRegistry(settings.tenant_registry_path),
            access or AccessPolicy(path=home / "runtime" / "access.json"),
            knowledge.store,
            router.breakers,
        ),
        telemetry=telemetry,
        model_slots=ModelSlots(max_concurrent_model_calls),
    )
    return services


def _first_use_publisher(settings: Settings, registry: PromptRegistry) -> FirstUsePublisher | None:
    """Publishes shipped prompts on first use where the settings allow it (local by default)."""
    if not settings.prompt_publish_on_first_use:
        return None
    return FirstUsePublisher(
        registry.store,
        settings.home_dir / "prompts" / "publish.lock",
        tokenizer_dirs=settings.prompt_tokenizer_dirs,
    )
