"""The request workflow as an explicit LangGraph `StateGraph`.

    validate → authorise → load_context → prepare_prompt → execute_model → validate_output
                                                               ↑                 │ invalid answer,
                                                               └─────────────────┤ models left
                                                                                 ↓ valid
                                                                   store_and_update_memory → END

* validate: the request against `AgentRequest` (size limits; errors name the field).
* authorise: tenant known, user allowed; resources guarded (index present, a model not tripped).
* load_context: the session's recent turns (short-term memory, else the versioned conversation
  store), retrieval from the tenant's index, and long-term memories of the user.
* prepare_prompt: the system and user prompts from the registry (alias, A/B variant, fallback),
  rendered with what fits the context budget (context_window.py): chunks below the relevance
  threshold, or that do not fit, are kept for the record but not given to the model.
* execute_model: the router (retries, fallbacks, breakers, limits), at most N calls at once.
* validate_output: non-empty, within limits, citing only given sources; refusals detected. An
  invalid answer sends the request back to execute_model without that model.
* store_and_update_memory: new conversation version, short-term and working memory, and a
  long-term memory when the user asked for something to be remembered.

Each node runs in its own OpenTelemetry span (`agent.<phase>`), child of the request span, and
adds its duration to `RunContext.timings`. The same topology is compiled twice: with sync nodes
(`run`) and with async nodes (`arun`), where blocking I/O runs in worker threads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, cast

from langgraph.graph import END, START, StateGraph
from opentelemetry.context import Context
from pydantic import ValidationError

from agent_platform.runtime.memory.base import MemoryScope, Turn
from agent_platform.runtime.response import AgentRequest, ContextUsage, PromptUsed
from agent_platform.runtime.telemetry import record_error

if TYPE_CHECKING:
    from agent_platform.runtime.phases import AgentServices

NODES = (
    "validate",
    "authorise",
    "load_context",
    "prepare_prompt",
    "execute_model",
    "validate_output",
    "store_and_update_memory",
)
BLOCKING = frozenset({"load_context", "prepare_prompt", "store_and_update_memory"})


@dataclass
class RunContext:
    """Per-request bookkeeping that outlives a failure (the graph's state does not)."""

    trace_id: str
    otel: Context
    session_id: str = ""
    request: AgentRequest | None = None
    scope: MemoryScope | None = None
    prompt: PromptUsed | None = None
    timings: dict[str, float] = field(default_factory=dict)
    failed_phase: str | None = None
    model_ms: float = 0.0


class RunState(TypedDict, total=False):
    run: RunContext
    raw: dict[str, Any]
    history: list[Turn]
    hits: list[Any]
    screened: Any
    used: list[Any]
    memories: list[str]
    messages: list[Any]
    system: Any
    user_prompt: Any
    context: ContextUsage
    refusals: list[str]
    routed: Any
    excluded: list[str]
    problems: list[str]
    answer: str
    refused: bool
    citations: list[Any]
    state_version: int
    next: str


def validation_error(exc: ValidationError) -> tuple[str, str, list[dict[str, Any]]]:
    """(field, message, errors) of a pydantic error, naming the first offending field."""
    errors = exc.errors(include_url=False)
    first = errors[0] if errors else {"loc": ("request",), "msg": str(exc)}
    loc = ".".join(str(p) for p in first.get("loc", ())) or "request"
    return loc, str(first.get("msg", "invalid value")), [dict(e) for e in errors]


class Node(Protocol):
    """A graph node as LangGraph calls it: with the state, by the parameter name `state`."""

    def __call__(self, state: RunState) -> dict[str, Any]: ...


class AsyncNode(Protocol):
    """The same node for the async graph."""

    async def __call__(self, state: RunState) -> dict[str, Any]: ...


class WorkflowNodes:
    """The graph nodes over one runtime's `AgentServices` (phases.py holds their logic)."""

    def __init__(self, services: AgentServices | None) -> None:
        # None only for `mermaid()`, which draws the graph and never runs a node
        self.rt = cast("AgentServices", services)

    # --- graph plumbing --------------------------------------------------------------------
    def _timed(self, name: str, body: Callable[[RunState], dict[str, Any]]) -> Node:
        def node(state: RunState) -> dict[str, Any]:
            run = state["run"]
            started = time.perf_counter()
            with self.rt.telemetry.tracer.start_as_current_span(
                f"agent.{name}", context=run.otel, attributes={"agent_platform.phase": name}
            ) as span:
                try:
                    return body(state)
                except BaseException as exc:
                    run.failed_phase = run.failed_phase or name
                    record_error(span, exc)
                    raise
                finally:
                    ms = (time.perf_counter() - started) * 1000.0
                    run.timings[name] = run.timings.get(name, 0.0) + ms

        return node

    def _async(self, name: str, sync_node: Node) -> AsyncNode:
        if name == "execute_model":
            return self._execute_model_async
        if name in BLOCKING:

            async def threaded(state: RunState) -> dict[str, Any]:
                return await asyncio.to_thread(sync_node, state)

            return threaded

        async def inline(state: RunState) -> dict[str, Any]:
            return sync_node(state)

        return inline

    def build(self, *, asynchronous: bool) -> Any:
        graph = StateGraph(RunState)
        bodies = {name: getattr(self, name) for name in NODES}
        for name in NODES:
            sync_node = self._timed(name, bodies[name])
            node: Node | AsyncNode = self._async(name, sync_node) if asynchronous else sync_node
            graph.add_node(name, node)
        graph.add_edge(START, NODES[0])
        for a, b in pairwise(NODES[:6]):
            graph.add_edge(a, b)
        graph.add_conditional_edges(
            "validate_output",
            lambda s: s.get("next", "store"),
            {"retry": "execute_model", "store": "store_and_update_memory"},
        )
        graph.add_edge("store_and_update_memory", END)
        return graph.compile(name="agent_workflow")

    # --- nodes -----------------------------------------------------------------------------
    def validate(self, state: RunState) -> dict[str, Any]:
        from agent_platform.runtime.errors import RequestValidationError

        raw = state.get("raw")
        if not isinstance(raw, dict):
            raise RequestValidationError("request", "must be a mapping of request fields")
        try:
            request = AgentRequest.model_validate(raw)
        except ValidationError as exc:
            raise RequestValidationError(*validation_error(exc)) from None
        run = state["run"]
        run.request = request
        run.session_id = request.session_id or run.session_id
        run.scope = MemoryScope(request.tenant, request.user, run.session_id)
        return {}

    def authorise(self, state: RunState) -> dict[str, Any]:
        request = state["run"].request
        assert request is not None  # nosec B101  # narrows a type for mypy; the invariant holds by construction
        self.rt.gatekeeper.authorise(request.tenant, request.user)
        self.rt.gatekeeper.guard(request.tenant, self.rt.model_chain())
        return {}

    def load_context(self, state: RunState) -> dict[str, Any]:
        return self.rt.load_context(state["run"])

    def prepare_prompt(self, state: RunState) -> dict[str, Any]:
        return self.rt.prepare_prompt(state["run"], state)

    def execute_model(self, state: RunState) -> dict[str, Any]:
        with self.rt.model_slots.sync():
            return self.rt.execute_model(state["run"], state)

    async def _execute_model_async(self, state: RunState) -> dict[str, Any]:
        run = state["run"]
        tracer = self.rt.telemetry.tracer
        started = time.perf_counter()
        with tracer.start_as_current_span(
            "agent.execute_model",
            context=run.otel,
            attributes={"agent_platform.phase": "execute_model"},
        ) as span:
            try:
                async with self.rt.model_slots.asynchronous():
                    return await self.rt.aexecute_model(run, state)
            except BaseException as exc:
                run.failed_phase = run.failed_phase or "execute_model"
                record_error(span, exc)
                raise
            finally:
                ms = (time.perf_counter() - started) * 1000.0
                run.timings["execute_model"] = run.timings.get("execute_model", 0.0) + ms

    def validate_output(self, state: RunState) -> dict[str, Any]:
        return self.rt.validate_output(state["run"], state)

    def store_and_update_memory(self, state: RunState) -> dict[str, Any]:
        return self.rt.store_and_update_memory(state["run"], state)


def mermaid() -> str:
    """The workflow graph as a Mermaid flowchart (no runtime needed)."""
    chart: str = WorkflowNodes(None).build(asynchronous=False).get_graph().draw_mermaid()
    return chart
