"""What each workflow phase does, over the services of one `AgentRuntime` (workflow.py wires them).

Timing keys. Each phase's duration is reported under its node name; two parts of phases are also
reported, under dotted keys: `load_context.embed_query` (embedding the question) and
`execute_model.model_call` (time inside model calls, all attempts, without backoff sleeps).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Self

from langchain_core.messages import HumanMessage, SystemMessage
from opentelemetry import trace

from agent_platform.knowledge.service import KnowledgeBase
from agent_platform.prompts import LoadedPrompt
from agent_platform.runtime.access import Gatekeeper
from agent_platform.runtime.agent_config import AgentConfig
from agent_platform.runtime.config import RuntimeSettings
from agent_platform.runtime.context_window import (
    ContextBudgetError,
    ContextSelection,
    Costs,
    select_context,
)
from agent_platform.runtime.errors import ModelsFailedError, RequestValidationError
from agent_platform.runtime.grounding import (
    cite,
    is_refusal,
    min_relevance,
    optimal_relevance,
    output_problem,
)
from agent_platform.runtime.long_term import VectorLongTermMemory, fact_worth_keeping
from agent_platform.runtime.memory import write_together
from agent_platform.runtime.memory.base import (
    ConversationStore,
    ShortTermMemory,
    Turn,
    WorkingMemory,
)
from agent_platform.runtime.models.extractive import NO_ANSWER
from agent_platform.runtime.prompting import PromptResolver
from agent_platform.runtime.protection import QUOTE_WARNING, RequestProtection
from agent_platform.runtime.response import ContextUsage
from agent_platform.runtime.router import AllModelsFailedError, NoCandidateModelsError, Router
from agent_platform.runtime.telemetry import Telemetry
from agent_platform.runtime.tokens import MESSAGE_OVERHEAD_TOKENS, count_tokens
from agent_platform.runtime.workflow import RunContext, RunState
from agent_platform.vectorstore.base import SearchMode

MAX_HISTORY_TURNS = 10
MEMORY_RECALL_K = 3
MEMORY_HEADER = "Memory (facts this user asked you to keep; not sources, do not cite):"


class ModelSlots:
    """At most `limit` model calls at once across every thread and event loop of the process.

    One counter under a lock; callers that find it full queue up (first come, first served) and
    the slot a caller frees goes straight to the next one: a thread waits on an event, a coroutine
    on a future of its own loop, woken thread-safely.
    """

    def __init__(self, limit: int = 10) -> None:
        if limit < 1:
            raise ValueError(f"max_concurrent_model_calls: must be >= 1, got {limit}")
        self.limit = limit
        self._lock = threading.Lock()
        self._waiters: deque[Callable[[], bool]] = deque()  # each hands a slot over, or says no
        self.in_use = 0
        self.peak = 0

    def _take(self) -> bool:
        """Under the lock: take a free slot unless others are already queued for one."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            self.peak = max(self.peak, self.in_use)
            return True
        return False

    def _release(self) -> None:
        with self._lock:
            while self._waiters:
                if self._waiters.popleft()():  # the slot passes on; in_use is unchanged
                    return
            self.in_use -= 1

    @contextmanager
    def sync(self) -> Iterator[None]:
        with self._lock:
            granted = threading.Event()
            if self._take():
                granted.set()
            else:
                self._waiters.append(lambda: _set(granted))
        granted.wait()
        try:
            yield
        finally:
            self._release()

    @asynccontextmanager
    async def asynchronous(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[None] = loop.create_future()

        def wake() -> bool:  # called by the releasing thread, under the lock
            if granted.done():
                return False  # cancelled while queued
            try:
                loop.call_soon_threadsafe(accept)
            except RuntimeError:  # the loop is closed
                return False
            return True

        def accept() -> None:  # on the waiter's loop
            if granted.done():  # cancelled after the slot was handed over: pass it on
                self._release()
            else:
                granted.set_result(None)

        with self._lock:
            if self._take():
                granted.set_result(None)
            else:
                self._waiters.append(wake)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():  # granted, then cancelled
                self._release()
            raise
        try:
            yield
        finally:
            self._release()


@dataclass(frozen=True)
class PromptLayout:
    """What each part of a request costs in tokens once rendered by one (system, user) prompt pair.

    Measured once per pair of versions by rendering the templates with empty probes (no source,
    one, two; an untitled and a titled one; no turn, one, two), so the costs follow whatever the
    templates do with sources and turns. The memory section is appended by `prepare_prompt`.
    """

    fixed_tokens: int  # both prompts with no source, memory or turn, and an empty question
    costs: Costs[Any, Turn]

    @classmethod
    def measure(cls, prompts: PromptResolver, system: LoadedPrompt, user: LoadedPrompt) -> Self:
        def sys(*sources: dict[str, str]) -> int:
            return count_tokens(prompts.render(system, {"sources": list(sources)}).text)

        def usr(*turns: dict[str, str]) -> int:  # the probe question "?" is one token
            inputs = {"question": "?", "history": list(turns)}
            return count_tokens(prompts.render(user, inputs).text) - 1

        blank, titled = {"title": "", "text": ""}, {"title": "t", "text": ""}
        no_source, one, two = sys(), sys(blank), sys(blank, blank)
        per_source, per_title = max(two - one, 0), max(sys(titled) - one, 0)
        turn = {"role": "user", "content": ""}
        no_turn, one_turn, two_turns = usr(), usr(turn), usr(turn, turn)
        per_turn = max(two_turns - one_turn, 0)
        overhead = 2 * MESSAGE_OVERHEAD_TOKENS
        return cls(
            fixed_tokens=no_source + no_turn + overhead,
            costs=Costs(
                chunk=lambda h: (
                    per_source + per_title * count_tokens(h.source) + count_tokens(h.text)
                ),
                memory=lambda m: count_tokens(m) + 1,  # "- " and the snippet
                turn=lambda t: per_turn + count_tokens(t.content),
                chunk_header=max(one - per_source - no_source, 0),
                memory_header=count_tokens(MEMORY_HEADER),
                turn_header=max(one_turn - per_turn - no_turn, 0),
            ),
        )


@dataclass
class AgentServices:
    """Everything the phases use; built by `AgentRuntime.from_settings`."""

    agent: AgentConfig
    runtime: RuntimeSettings
    knowledge: KnowledgeBase
    router: Router
    prompts: PromptResolver
    conversation: ConversationStore
    working: WorkingMemory
    short_term: ShortTermMemory
    long_term: VectorLongTermMemory
    gatekeeper: Gatekeeper
    telemetry: Telemetry
    model_slots: ModelSlots
    _layouts: dict[tuple[str, int, str, int], PromptLayout] = field(
        default_factory=dict, init=False, repr=False
    )

    @cached_property
    def protection(self) -> RequestProtection:
        return RequestProtection(self.runtime.protection, self.telemetry.metrics.registry)

    def model_chain(self) -> list[str]:
        if self.agent.models is not None:
            return list(self.agent.models)
        return list(self.runtime.routes[self.agent.route].models)

    # --- load_context ----------------------------------------------------------------------
    def recent_turns(self, run: RunContext) -> list[Turn]:
        """The session's newest turns: from short-term memory (the layer kept for this, 1 h TTL),
        else, once that has expired, from the conversation store (24 h retention). A request
        without a session id starts a new session, which has none."""
        request, scope = run.request, run.scope
        assert request is not None and scope is not None  # nosec B101  # narrows a type for mypy; the invariant holds by construction
        if request.session_id is None:
            return []
        recent = self.short_term.recent(scope, limit=MAX_HISTORY_TURNS)
        if recent:
            return [Turn(m.role, m.content, dict(m.metadata)) for m in recent]
        return list(self.conversation.current(scope).turns[-MAX_HISTORY_TURNS:])

    def load_context(self, run: RunContext) -> dict[str, Any]:
        request = run.request
        assert request is not None  # nosec B101  # narrows a type for mypy; the invariant holds by construction
        history = self.recent_turns(run)
        config = self.agent.retrieval
        mode = SearchMode(config.mode)
        vector = None
        if mode is not SearchMode.KEYWORD:
            started = time.perf_counter()
            vector = self.knowledge.embedder.embed_query(request.input)
            run.timings["load_context.embed_query"] = (time.perf_counter() - started) * 1000
        hits = self.knowledge.store.search(
            request.tenant, query_text=request.input, query_vector=vector, k=config.k, mode=mode
        )
        screened = self.protection.screen(request.tenant, hits)  # instructions: drop or quote
        memories: list[str] = []
        if vector is not None:
            recalled = self.long_term.recall_by_vector(
                request.tenant, request.user, request.input, vector, MEMORY_RECALL_K
            )
            memories = [m.text for m in recalled]
        return {
            "history": history,
            "hits": screened.kept,
            "memories": memories,
            "screened": screened,
        }

    # --- prepare_prompt --------------------------------------------------------------------
    @cached_property
    def context_budget(self) -> int:
        """Prompt tokens a request may use: the smaller of `context.max_tokens` and the smallest
        context window among the models that may answer (any of the chain can, after retries and
        fallbacks), less the output reserve (at least the agent's `max_output_tokens`)."""
        context, catalogue = self.runtime.context, self.router.catalogue
        windows = [catalogue.get(name).context_window for name in self.model_chain()]
        reserve = max(context.reserve_output_tokens, self.agent.max_output_tokens)
        budget = min([context.max_tokens, *windows]) - reserve
        if budget <= 0:
            raise ContextBudgetError(
                f"context.max_tokens: the context window ({min([context.max_tokens, *windows])} "
                f"tokens) leaves no room for a prompt after reserving {reserve} for the output"
            )
        return budget

    def _layout(self, system: LoadedPrompt, user: LoadedPrompt) -> PromptLayout:
        key = (system.name, system.version, user.name, user.version)
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layouts[key] = PromptLayout.measure(self.prompts, system, user)
        return layout

    def prepare_prompt(self, run: RunContext, state: RunState) -> dict[str, Any]:
        """Render the prompts with what fits the context budget (context_window.py's priorities):
        strong chunks, memory, the newest turns, then merely relevant chunks."""
        request = run.request
        assert request is not None  # nosec B101  # narrows a type for mypy; the invariant holds by construction
        system_prompt, system_alias, variant = self.prompts.resolve(
            self.agent.system_prompt, request.user
        )
        user_prompt, user_alias, user_variant = self.prompts.resolve(
            self.agent.user_prompt, request.user
        )
        layout = self._layout(system_prompt, user_prompt)
        turns = [t for t in state.get("history", []) if t.role in {"user", "assistant"}]
        budget, overshoot = self.context_budget, 0
        screened = state.get("screened")
        quoted = screened.flagged if screened is not None and screened.action == "quoted" else {}
        for _ in range(3):  # the costs are exact for the shipped templates; re-fit if not
            chosen = self._select(layout, request.input, state, turns, budget - overshoot)
            system = self.prompts.render(
                system_prompt,
                {"sources": [_source(h, quoted) for h in chosen.chunks]},
                variant,
            )
            system_text = system.text
            if chosen.memory:
                system_text += (
                    "\n\n" + MEMORY_HEADER + "\n" + "\n".join(f"- {m}" for m in chosen.memory)
                )
            history = [{"role": t.role, "content": t.content} for t in chosen.turns]
            user = self.prompts.render(
                user_prompt, {"question": request.input, "history": history}, user_variant
            )
            used = count_tokens(system_text) + count_tokens(user.text) + 2 * MESSAGE_OVERHEAD_TOKENS
            if used <= budget:
                break
            overshoot += used - budget
        else:
            raise ContextBudgetError(
                f"could not fit the prompt into {budget} tokens (the last try used {used})"
            )
        run.prompt = self.prompts.used(system, system_alias)
        context = ContextUsage(
            budget_tokens=budget,
            prompt_tokens=used,
            dropped_chunks=len(chosen.dropped_for_budget),
            dropped_turns=chosen.dropped_turns,
            dropped_memories=chosen.dropped_memory,
            flagged_chunks=sorted(screened.flagged) if screened is not None else [],
            flagged_action=screened.action if screened is not None else "none",
        )
        trace.get_current_span().set_attributes(  # the agent.prepare_prompt span
            {f"agent_platform.context.{k}": v for k, v in context.model_dump().items()}
        )
        refusals = [NO_ANSWER, str(self.prompts.declared_default(system_prompt, "refusal") or "")]
        return {
            "system": system,
            "user_prompt": self.prompts.used(user, user_alias),
            "messages": [SystemMessage(system_text), HumanMessage(user.text)],
            "refusals": [r for r in refusals if r],
            "used": chosen.chunks,
            "context": context,
        }

    def _select(
        self,
        layout: PromptLayout,
        question: str,
        state: RunState,
        turns: list[Turn],
        budget: int,
    ) -> ContextSelection[Any, Turn]:
        config = self.agent.retrieval
        try:
            return select_context(
                budget_tokens=budget,
                fixed_tokens=layout.fixed_tokens + count_tokens(question),
                costs=layout.costs,
                chunks=state.get("hits", []),
                memory=state.get("memories", []),
                conversation=turns,
                min_relevance=min_relevance(config),
                optimal_relevance=optimal_relevance(config),
                max_chunk_share=self.runtime.context.max_chunk_share,
            )
        except ContextBudgetError as exc:
            if layout.fixed_tokens > budget:  # the prompts alone: a configuration problem
                raise ContextBudgetError(
                    f"context.max_tokens: the prompts alone need {layout.fixed_tokens} tokens; "
                    f"the budget is {budget}"
                ) from None
            error = RequestValidationError("input", f"too long for the model's context: {exc}")
            error.phase = "prepare_prompt"
            raise error from None

    # --- execute_model ---------------------------------------------------------------------
    def _route_args(self, state: RunState) -> dict[str, Any]:
        excluded = set(state.get("excluded", []))
        if not excluded and self.agent.models is None:
            return {"route": self.agent.route, "strategy": self.agent.strategy}
        models = [m for m in self.model_chain() if m not in excluded]
        if not models:
            raise ModelsFailedError(
                "no model gave a valid answer: " + "; ".join(state.get("problems", []))
            )
        strategy = self.agent.strategy
        if strategy is None and self.agent.route in self.runtime.routes:
            strategy = self.runtime.routes[self.agent.route].strategy
        return {"models": models, "strategy": strategy}

    def _call_kwargs(self, run: RunContext, state: RunState) -> dict[str, Any]:
        request = run.request
        assert request is not None  # nosec B101  # narrows a type for mypy; the invariant holds by construction
        return {
            **self._route_args(state),
            "tenant": request.tenant,
            "user": request.user,
            "max_tokens": self.agent.max_output_tokens,
        }

    def _routed(self, run: RunContext, routed: Any) -> dict[str, Any]:
        model_ms = sum(a.latency_s for a in routed.attempts) * 1000.0
        key = "execute_model.model_call"
        run.timings[key] = run.timings.get(key, 0.0) + model_ms
        return {"routed": routed}

    def execute_model(self, run: RunContext, state: RunState) -> dict[str, Any]:
        kwargs = self._call_kwargs(run, state)
        try:
            routed = self.router.invoke(state["messages"], **kwargs)
        except (AllModelsFailedError, NoCandidateModelsError) as exc:
            raise _models_failed(exc) from exc
        return self._routed(run, routed)

    async def aexecute_model(self, run: RunContext, state: RunState) -> dict[str, Any]:
        kwargs = self._call_kwargs(run, state)
        try:
            routed = await self.router.ainvoke(state["messages"], **kwargs)
        except (AllModelsFailedError, NoCandidateModelsError) as exc:
            raise _models_failed(exc) from exc
        return self._routed(run, routed)

    # --- validate_output -------------------------------------------------------------------
    def validate_output(self, run: RunContext, state: RunState) -> dict[str, Any]:
        routed, used = state["routed"], state.get("used", [])
        answer = routed.text.strip()
        problem = output_problem(
            answer, sources=len(used), max_output_tokens=self.agent.max_output_tokens
        )
        if problem is not None:
            failed = [a.model for a in routed.attempts if a.outcome != "success"]
            excluded = [*state.get("excluded", []), *failed, routed.model]
            problems = [*state.get("problems", []), f"{routed.model}: {problem}"]
            left = [m for m in self.model_chain() if m not in excluded]
            if not left:
                raise ModelsFailedError(
                    "no model gave a valid answer: " + "; ".join(problems),
                    attempts=routed.attempts,
                )
            return {"excluded": excluded, "problems": problems, "next": "retry"}
        refused = is_refusal(answer, state.get("refusals", []))
        request = run.request
        assert request is not None  # nosec B101  # narrows a type for mypy; the invariant holds by construction
        guarded = self.protection.guard_answer(
            request.tenant, routed.model, answer, (state.get("refusals") or [NO_ANSWER])[-1]
        )
        answer, refused = guarded.text, refused or guarded.refused
        citations = [] if refused else cite(answer, used)
        context = state["context"].model_copy(
            update={
                "answer_pii": guarded.pii_types,
                "answer_pii_action": guarded.pii_action,
                "relayed_instruction_refused": guarded.relayed_instruction,
            }
        )
        return {
            "answer": answer,
            "refused": refused,
            "citations": citations,
            "context": context,
            "next": "store",
        }

    # --- store_and_update_memory -----------------------------------------------------------
    def store_and_update_memory(self, run: RunContext, state: RunState) -> dict[str, Any]:
        request, scope, routed = run.request, run.scope, state["routed"]
        assert request is not None and scope is not None  # nosec B101  # narrows a type for mypy; the invariant holds by construction
        answer, refused = state["answer"], state["refused"]  # already guarded
        question = self.protection.mask(request.input)  # memory keeps no personal data
        meta = {"trace_id": run.trace_id}
        reply = {
            **meta,
            "model": routed.model,
            "refused": refused,
            "citations": [c.chunk_id for c in state["citations"]],
            "prompt": run.prompt.model_dump() if run.prompt else None,
        }
        status = "refused" if refused else "answered"
        with write_together(self.conversation, self.short_term, self.working):
            version = self.conversation.append(
                scope, [Turn("user", question, meta), Turn("assistant", answer, reply)]
            ).version
            self.short_term.add_many(
                scope, [("user", question, meta), ("assistant", answer, reply)]
            )
            self.working.put(
                scope,
                f"request:{run.trace_id}",
                {**reply, "status": status, "state_version": version, "at": time.time()},
            )
        fact = fact_worth_keeping(question)
        if fact is not None:
            self.long_term.remember(
                request.tenant,
                request.user,
                fact,
                {"kind": "fact", "session": scope.session, "trace_id": run.trace_id},
            )
        return {"state_version": version}


def _set(event: threading.Event) -> bool:
    """Wake a waiter for a model slot (a waiter callback returns whether it took the slot)."""
    event.set()
    return True


def _source(hit: Any, quoted: dict[str, list[str]]) -> dict[str, str]:
    """A chunk as the system prompt's `sources` entry; a flagged chunk carries a warning."""
    source = {"title": hit.source, "text": hit.text}
    if hit.chunk_id in quoted:
        source["warning"] = QUOTE_WARNING
    return source


def _models_failed(exc: Exception) -> ModelsFailedError:
    return ModelsFailedError(
        f"no model could answer the request: {exc}", attempts=getattr(exc, "attempts", ())
    )
