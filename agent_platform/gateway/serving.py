"""Serving logic over `AgentRuntime`: which version answers a request, running it within its
deadline, sessions, and the readiness verdict. Knows nothing of HTTP (no status codes, headers
or FastAPI): it raises the library's errors and `gateway.errors`, mapped at the edge.

One `AgentServer` per worker process. It loads the knowledge base (embedding model, indexes) once
and shares it between the runtimes of the versions it serves, keyed by (agent, version). Aliases
(`champion`, `challenger`) are re-read after `champion_ttl_s`, so a promotion is picked up without
a restart; a request keeps the runtime it resolved, so one already running finishes on the version
it started with, while the next ones get the new version.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mlflow.exceptions import MlflowException
from opentelemetry import trace

from agent_platform.delivery.state import open_rollout_store
from agent_platform.gateway.errors import (
    DeadlineExceededError,
    InvalidInputError,
    SessionNotFoundError,
    ShuttingDownError,
    UnknownServedAgentError,
)
from agent_platform.gateway.protocol import (
    AgentView,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    CompletionUsage,
    Delta,
    PlatformExtension,
    PromptRefView,
    RollbackResult,
    SessionVersion,
    SessionView,
)
from agent_platform.gateway.rollouts import RolloutView
from agent_platform.knowledge.service import KnowledgeBase
from agent_platform.model_registry.errors import UnknownAgentError
from agent_platform.model_registry.registry import CHAMPION, AgentModelRegistry, AgentVersion
from agent_platform.runtime.agent import AgentRuntime
from agent_platform.runtime.agent_config import AgentConfig, PromptRef
from agent_platform.runtime.circuit_breaker import BreakerState
from agent_platform.runtime.config import RuntimeSettings
from agent_platform.runtime.errors import RequestDeadlineError
from agent_platform.runtime.memory import VersionNotFoundError
from agent_platform.runtime.response import AgentResponse
from agent_platform.runtime.streaming import AnswerDelta, StreamedAnswer, StreamEvent
from agent_platform.settings import Settings

logger = logging.getLogger(__name__)
DEFAULT_VERSION = "default"
ANONYMOUS_USER = "anonymous"


@dataclass
class ServedVersion:
    """One loaded agent version: its runtime and what the registry says about it."""

    agent: str
    label: str  # the version number, or "default" before anything was promoted
    runtime: AgentRuntime
    registered: AgentVersion | None = None
    in_flight: int = 0


def parse_model(model: str) -> tuple[str, str]:
    """`grounded-qa` → (grounded-qa, champion); `grounded-qa@challenger`; `grounded-qa@3`."""
    agent, _, ref = model.partition("@")
    return agent, ref or CHAMPION


class AgentServer:
    """Resolves agent names to loaded runtimes and runs requests on them (one per worker)."""

    def __init__(self, settings: Settings, runtime_settings: RuntimeSettings | None = None):
        self.settings = settings
        self.config = settings.serving
        self.runtime_settings = runtime_settings or RuntimeSettings()
        self.knowledge: KnowledgeBase | None = None
        self.started = False
        self.draining = False
        self._versions: dict[tuple[str, str], ServedVersion] = {}
        self._aliases: dict[tuple[str, str], tuple[str, float]] = {}
        self._build_lock = threading.Lock()
        self._registry: AgentModelRegistry | None = None
        self.rollouts = RolloutView(
            open_rollout_store(settings),
            on_change=self._expire_champion,
            ttl_s=min(self.config.champion_ttl_s, 1.0),
        )

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Load models and indexes and the serving agent's version before the worker is ready."""
        self.knowledge = KnowledgeBase(self.settings)
        self.knowledge.embedder.embed_query("warm up the embedding model")
        self.knowledge.store.tenants()
        served = self.resolve(self.settings.serving_agent)
        for model in served.runtime.services.model_chain():
            try:  # load each model of the route once, now rather than on the first request
                served.runtime.catalogue.chat_model(model)
            except Exception as exc:
                logger.warning("model %s of the serving route did not load: %s", model, exc)
        self.started = True

    def close(self) -> None:
        """Flush telemetry, request logs and memory writes of every runtime, then the indexes."""
        for served in list(self._versions.values()):
            _close_runtime(served.runtime)
        self._versions.clear()
        if self.knowledge is not None:
            self.knowledge.close()

    # --- which version answers ---------------------------------------------------------------
    def _registry_or_none(self) -> AgentModelRegistry | None:
        uri = self.settings.resolved_mlflow_tracking_uri
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
            return None  # nothing was ever registered; none is created here
        if self._registry is None:
            self._registry = AgentModelRegistry.from_settings(self.settings)
        return self._registry

    def _read_alias(self, agent: str, alias: str) -> str:
        registry = self._registry_or_none()
        version = None
        if registry is not None:
            try:
                version = registry.aliases(agent).get(alias)
            except UnknownAgentError:
                version = None
                if agent != self.settings.serving_agent:
                    raise UnknownServedAgentError(
                        f"model: no agent named {agent!r} is registered or served"
                    ) from None
        if version is not None:
            return str(version)
        if agent == self.settings.serving_agent and alias == CHAMPION:
            return DEFAULT_VERSION  # nothing promoted yet: the default configuration
        if registry is None and agent != self.settings.serving_agent:
            raise UnknownServedAgentError(
                f"model: no agent named {agent!r} is registered or served"
            )
        raise UnknownServedAgentError(f"model: agent {agent!r} has no {alias!r} version")

    def _expire_champion(self, agent: str) -> None:
        """Re-read `champion` on the next request (a rollout moved or restored it); the label
        stays for readiness until then."""
        entry = self._aliases.get((agent, CHAMPION))
        if entry is not None:
            self._aliases[(agent, CHAMPION)] = (entry[0], 0.0)

    def route(self, model: str, user: str | None, session_id: str | None) -> str:
        """During a blue/green rollout, `agent` (its champion) names blue or green by the
        caller's hash bucket; any other reference, or no rollout, is served as asked. Call
        `rollouts.refresh(agent)` first when `rollouts.fresh(agent)` is False."""
        agent, ref = parse_model(model)
        if ref != CHAMPION:
            return model
        version = self.rollouts.version(agent, user, session_id)
        return f"{agent}@{version}" if version is not None else model

    def cached(self, model: str) -> ServedVersion | None:
        """The loaded version for `model` if its alias is fresh (no I/O, for the event loop)."""
        agent, ref = parse_model(model)
        label = ref
        if not ref.isdigit():
            entry = self._aliases.get((agent, ref))
            if entry is None or entry[1] <= time.monotonic():
                return None
            label = entry[0]
        return self._versions.get((agent, label))

    def resolve(self, model: str) -> ServedVersion:
        """The version `model` names, loading it on first use (blocking: MLflow, model loads)."""
        found = self.cached(model)
        if found is not None:
            return found
        agent, ref = parse_model(model)
        if ref.isdigit():
            label = ref
        else:
            label = self._read_alias(agent, ref)
            self._aliases[(agent, ref)] = (label, time.monotonic() + self.config.champion_ttl_s)
        with self._build_lock:
            served = self._versions.get((agent, label))
            if served is None:
                served = self._build(agent, label)
                self._versions[(agent, label)] = served
                logger.info("serving %s version %s", agent, label)
        return served

    def _build(self, agent: str, label: str) -> ServedVersion:
        registered = None
        if label == DEFAULT_VERSION:
            config = AgentConfig()  # as AgentRuntime.from_settings before promotion
        else:
            registry = self._registry_or_none()
            if registry is None:
                raise UnknownServedAgentError(f"model: agent {agent!r} has no version {label}")
            try:
                registered = registry.get(agent, int(label))
            except MlflowException as exc:  # pragma: no cover - store errors, not lookups
                raise UnknownServedAgentError(f"model: {agent}@{label}: {exc.message}") from None
            config = registered.config()
        runtime = AgentRuntime.from_settings(
            self.settings,
            agent=config,
            runtime_settings=self.runtime_settings,
            knowledge=self.knowledge,
        )
        return ServedVersion(agent, label, runtime, registered)

    def serving_label(self) -> str | None:
        """The version label the serving agent resolved to last (None before it loaded)."""
        entry = self._aliases.get((self.settings.serving_agent, CHAMPION))
        return entry[0] if entry else None

    def loaded(self) -> list[ServedVersion]:
        return list(self._versions.values())

    # --- running -----------------------------------------------------------------------------
    async def run(
        self,
        served: ServedVersion,
        *,
        tenant: str,
        user: str,
        input: str,
        session_id: str | None,
        timeout_s: float,
    ) -> AgentResponse:
        """One request on the version it resolved to, within its deadline."""
        if self.draining:
            raise ShuttingDownError("the worker is shutting down; retry on another")
        served.in_flight += 1
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(
                served.runtime.arun(tenant=tenant, user=user, input=input, session_id=session_id),
                timeout_s,
            )
        except TimeoutError:
            # the run was cancelled, which the runtime does not record: record and count it here
            record = {
                "trace_id": format(trace.get_current_span().get_span_context().trace_id, "032x"),
                "session_id": session_id,
                "tenant": tenant,
                "user": user,
                "agent": served.runtime.agent.name,
                "outcome": "DeadlineExceeded",
                "prompt": None,
                "latency_ms": {"total": round((time.perf_counter() - started) * 1000, 3)},
            }
            served.runtime.request_log.write(record)
            served.runtime.request_metrics.observe(record)
            raise DeadlineExceededError(timeout_s) from None
        finally:
            served.in_flight -= 1

    async def chat(
        self,
        request: ChatCompletionRequest,
        served: ServedVersion,
        *,
        tenant: str,
        timeout_s: float,
    ) -> AgentResponse:
        text = request.input_text()
        if text is None:
            raise InvalidInputError("messages", "no message with role 'user'")
        session_id = (request.metadata or {}).get("session_id")
        return await self.run(
            served,
            tenant=tenant,
            user=request.user or ANONYMOUS_USER,
            input=text,
            session_id=session_id,
            timeout_s=timeout_s,
        )

    async def stream_chat(
        self,
        request: ChatCompletionRequest,
        served: ServedVersion,
        *,
        tenant: str,
        timeout_s: float,
    ) -> AsyncGenerator[StreamEvent]:
        """`chat` as the runtime's stream events (`AgentRuntime.astream`). The run has its own
        task bounded by `timeout_s`: a client that leaves mid-stream does not stop it, so its
        answer is still stored and recorded (`delivery: "abandoned"`)."""
        text = request.input_text()
        if text is None:
            raise InvalidInputError("messages", "no message with role 'user'")
        if self.draining:
            raise ShuttingDownError("the worker is shutting down; retry on another")
        events = served.runtime.astream(
            tenant=tenant,
            user=request.user or ANONYMOUS_USER,
            input=text,
            session_id=(request.metadata or {}).get("session_id"),
            deadline_s=timeout_s,
        )
        served.in_flight += 1
        try:
            async for event in events:
                yield event
        except RequestDeadlineError:
            raise DeadlineExceededError(timeout_s) from None
        finally:
            served.in_flight -= 1
            await events.aclose()

    async def finish_streams(self, timeout_s: float) -> None:
        """Let runs whose clients left mid-stream finish (and store their answers) before
        `close`, within the grace period."""
        left = 0
        for served in list(self._versions.values()):
            left += await served.runtime.finish_streams(timeout_s)
        if left:
            logger.warning("%d abandoned stream run(s) still running at shutdown", left)

    # --- sessions ----------------------------------------------------------------------------
    def session(
        self, served: ServedVersion, session_id: str, *, tenant: str, user: str
    ) -> SessionView:
        runtime = served.runtime
        runtime.services.gatekeeper.authorise(tenant, user)
        versions = runtime.history(session_id, tenant=tenant, user=user)
        if not versions:
            raise SessionNotFoundError(
                f"session: {session_id!r} has no versions for this tenant and user"
            )
        return SessionView(
            session_id=session_id,
            tenant=tenant,
            user=user,
            current_version=versions[-1].version,
            versions=[SessionVersion(**v.__dict__) for v in versions],
        )

    def rollback(
        self, served: ServedVersion, session_id: str, version: int, *, tenant: str, user: str
    ) -> RollbackResult:
        self.session(served, session_id, tenant=tenant, user=user)  # 404s first
        try:
            state = served.runtime.rollback(session_id, version, tenant=tenant, user=user)
        except VersionNotFoundError:
            raise SessionNotFoundError(
                f"version: session {session_id!r} has no version {version}"
            ) from None
        return RollbackResult(
            session_id=session_id,
            version=state.version,
            restored_from=version,
            turn_count=len(state.turns),
        )

    # --- describing --------------------------------------------------------------------------
    def describe(self, served: ServedVersion) -> AgentView:
        config = served.runtime.agent
        registered = served.registered
        tags = registered.tags if registered else {}
        prompts = {
            "system": _prompt_view(config.system_prompt, tags),
            "user": _prompt_view(config.user_prompt, tags),
        }
        lineage = {
            k: v
            for k, v in tags.items()
            if k.startswith(("prompt", "index", "embedding", "dataset", "dagster", "code", "git"))
        }
        aliases: dict[str, int] = {}
        if registered is not None and self._registry_or_none() is not None:
            aliases = self._registry_or_none().aliases(served.agent)  # type: ignore[union-attr]
        snapshot = tags.get("index_snapshot_id")
        return AgentView(
            agent=served.agent,
            serving_version=served.label,
            aliases=aliases,
            config=config.model_dump(mode="json"),
            prompts=prompts,
            index_snapshot=snapshot,
            lineage=lineage,
            evaluated=registered.evaluated if registered else False,
            gates_passed=registered.gates_passed if registered else None,
            metrics=registered.metrics if registered else {},
        )

    # --- readiness ---------------------------------------------------------------------------
    def not_ready_reasons(self) -> list[str]:
        """Empty when the worker can serve: configuration resolved, indexes open, a model of the
        serving route with a closed circuit. Otherwise why not (for /readyz's 503)."""
        if self.draining:
            return ["the worker is shutting down"]
        if not self.started or self.knowledge is None:
            return ["models and indexes are still loading"]
        reasons: list[str] = []
        label = self.serving_label()
        served = self._versions.get((self.settings.serving_agent, label or ""))
        if served is None:
            return [f"the serving agent {self.settings.serving_agent!r} is not resolved"]
        try:
            self.knowledge.store.tenants()
        except Exception as exc:
            reasons.append(f"the vector index is not open: {type(exc).__name__}")
        chain = served.runtime.services.model_chain()
        breakers = served.runtime.services.router.breakers
        if not any(breakers.get(m).state is BreakerState.CLOSED for m in chain):
            reasons.append(f"no model of the route {chain} has a closed circuit")
        return reasons


def _prompt_view(ref: PromptRef, tags: dict[str, str]) -> PromptRefView:
    pinned = tags.get(f"prompt.{ref.name}.version")  # what the version was registered with
    return PromptRefView(
        name=ref.name,
        alias=None if ref.version else ref.alias,
        version=str(ref.version) if ref.version else pinned,
    )


def _close_runtime(runtime: AgentRuntime) -> None:
    """`AgentRuntime.close` without closing the knowledge base the runtimes share."""
    services = runtime.services
    services.router.close()
    for closable in (services.conversation, services.working, services.short_term):
        close = getattr(closable, "close", None)
        if close is not None:
            close()
    runtime.request_log.close()
    services.telemetry.shutdown()


# --- OpenAI wire formatting (protocol objects, no HTTP) -----------------------------------------
def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def extension(served: ServedVersion, response: AgentResponse) -> PlatformExtension:
    return PlatformExtension(
        agent=served.agent,
        agent_version=served.label,
        model=response.model,
        citations=response.citations,
        trace_id=response.trace_id,
        session_id=response.session_id,
        state_version=response.state_version,
        refused=response.refused,
        prompt=response.prompt,
        user_prompt=response.user_prompt,
    )


def usage(response: AgentResponse) -> CompletionUsage:
    u = response.usage
    return CompletionUsage(
        prompt_tokens=u.input_tokens,
        completion_tokens=u.output_tokens,
        total_tokens=u.input_tokens + u.output_tokens,
    )


def to_completion(model: str, served: ServedVersion, response: AgentResponse) -> ChatCompletion:
    return ChatCompletion(
        id=completion_id(),
        created=int(time.time()),
        model=model,
        choices=[Choice(message=AssistantMessage(content=response.answer))],
        usage=usage(response),
        system_fingerprint=f"{served.agent}@{served.label}",
        agent_platform=extension(served, response),
    )


class ChunkWriter:
    """The chunks of one streamed completion: the role first, a content chunk per piece of the
    answer, then the stop chunk carrying the platform extension (and a usage chunk when asked, as
    OpenAI does)."""

    def __init__(self, model: str, served: ServedVersion, *, include_usage: bool) -> None:
        self.model, self.served, self.include_usage = model, served, include_usage
        self.id, self.created = completion_id(), int(time.time())

    def chunk(
        self, delta: Delta, finish: Literal["stop", "length"] | None = None, **extra: Any
    ) -> ChatCompletionChunk:
        choices = [] if extra.get("usage") else [ChunkChoice(delta=delta, finish_reason=finish)]
        return ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=choices, **extra
        )

    def start(self) -> ChatCompletionChunk:
        return self.chunk(Delta(role="assistant", content=""))

    def event(self, event: StreamEvent) -> Iterator[ChatCompletionChunk]:
        if isinstance(event, AnswerDelta):
            yield self.chunk(Delta(content=event.text))
            return
        assert isinstance(event, StreamedAnswer)  # nosec B101  # narrows a type for mypy; the invariant holds by construction
        response = event.response
        if event.remainder and not event.replaced:
            yield self.chunk(Delta(content=event.remainder))
        yield self.chunk(
            Delta(),
            "stop",
            agent_platform=extension(self.served, response),
            replaced_answer=response.answer if event.replaced else None,
        )
        if self.include_usage:
            yield self.chunk(Delta(), usage=usage(response))
