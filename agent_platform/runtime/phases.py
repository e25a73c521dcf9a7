"""What each workflow phase does, over the services of one `AgentRuntime` (workflow.py wires them).

Timing keys. Each phase's duration is reported under its node name; two parts of phases are also
reported, under dotted keys: `load_context.embed_query` (embedding the question) and
`execute_model.model_call` (time inside model calls, all attempts, without backoff sleeps).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage

from agent_platform.knowledge.service import KnowledgeBase
from agent_platform.runtime.access import Gatekeeper
from agent_platform.runtime.agent_config import AgentConfig
from agent_platform.runtime.config import RuntimeSettings
from agent_platform.runtime.errors import ModelsFailedError
from agent_platform.runtime.grounding import (
    cited_numbers,
    is_refusal,
    min_relevance,
    output_problem,
)
from agent_platform.runtime.long_term import VectorLongTermMemory, fact_worth_keeping
from agent_platform.runtime.memory.base import (
    ConversationStore,
    ShortTermMemory,
    Turn,
    WorkingMemory,
)
from agent_platform.runtime.models.extractive import NO_ANSWER
from agent_platform.runtime.prompting import PromptResolver
from agent_platform.runtime.response import Citation
from agent_platform.runtime.router import AllModelsFailedError, NoCandidateModelsError, Router
from agent_platform.runtime.telemetry import Telemetry
from agent_platform.runtime.tokens import count_tokens
from agent_platform.runtime.workflow import RunContext, RunState
from agent_platform.vectorstore.base import SearchMode

MAX_HISTORY_TURNS = 10
MEMORY_RECALL_K = 3
MEMORY_HEADER = "Memory (facts this user asked you to keep; not sources, do not cite):"


class ModelSlots:
    """At most `limit` model calls at once: one semaphore for threads, one per event loop."""

    def __init__(self, limit: int = 10) -> None:
        if limit < 1:
            raise ValueError(f"max_concurrent_model_calls: must be >= 1, got {limit}")
        self.limit = limit
        self._threads = threading.BoundedSemaphore(limit)
        self._loops: weakref.WeakKeyDictionary[Any, asyncio.Semaphore] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.in_use = 0
        self.peak = 0

    def _enter(self) -> None:
        with self._lock:
            self.in_use += 1
            self.peak = max(self.peak, self.in_use)

    def _exit(self) -> None:
        with self._lock:
            self.in_use -= 1

    @contextmanager
    def sync(self) -> Iterator[None]:
        with self._threads:
            self._enter()
            try:
                yield
            finally:
                self._exit()

    @asynccontextmanager
    async def asynchronous(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        with self._lock:
            semaphore = self._loops.setdefault(loop, asyncio.Semaphore(self.limit))
        async with semaphore:
            self._enter()
            try:
                yield
            finally:
                self._exit()


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

    def model_chain(self) -> list[str]:
        if self.agent.models is not None:
            return list(self.agent.models)
        return list(self.runtime.routes[self.agent.route].models)

    # --- load_context ----------------------------------------------------------------------
    def load_context(self, run: RunContext) -> dict[str, Any]:
        request, scope = run.request, run.scope
        assert request is not None and scope is not None
        history = list(self.conversation.current(scope).turns)[-MAX_HISTORY_TURNS:]
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
        threshold = min_relevance(config)
        used = [h for h in hits if h.score >= threshold]
        memories: list[str] = []
        if vector is not None:
            recalled = self.long_term.recall_by_vector(
                request.tenant, request.user, request.input, vector, MEMORY_RECALL_K
            )
            memories = [m.text for m in recalled]
        return {"history": history, "hits": hits, "used": used, "memories": memories}

    # --- prepare_prompt --------------------------------------------------------------------
    def prepare_prompt(self, run: RunContext, state: RunState) -> dict[str, Any]:
        request = run.request
        assert request is not None
        system_ref, user_ref = self.agent.system_prompt, self.agent.user_prompt
        system_prompt, system_alias, variant = self.prompts.resolve(system_ref, request.user)
        sources = [{"title": h.source, "text": h.text} for h in state.get("used", [])]
        system = self.prompts.render(system_prompt, {"sources": sources}, variant)
        run.prompt = self.prompts.used(system, system_alias)
        system_text = system.text
        if state.get("memories"):
            system_text += (
                "\n\n" + MEMORY_HEADER + "\n" + "\n".join(f"- {m}" for m in state["memories"])
            )
        user_prompt, user_alias, user_variant = self.prompts.resolve(user_ref, request.user)
        budget = (
            self.runtime.context.max_tokens
            - self.runtime.context.reserve_output_tokens
            - count_tokens(system_text)
            - count_tokens(request.input)
        )
        history = [
            {"role": t.role, "content": t.content}
            for t in state.get("history", [])
            if t.role in {"user", "assistant"}
        ]
        while history and sum(count_tokens(h["content"]) + 4 for h in history) > budget:
            history.pop(0)
        user = self.prompts.render(
            user_prompt, {"question": request.input, "history": history}, user_variant
        )
        refusals = [NO_ANSWER, str(self.prompts.declared_default(system_prompt, "refusal") or "")]
        return {
            "system": system,
            "user_prompt": self.prompts.used(user, user_alias),
            "messages": [SystemMessage(system_text), HumanMessage(user.text)],
            "refusals": [r for r in refusals if r],
        }

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
        assert request is not None
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
        citations = (
            []
            if refused
            else [
                Citation(
                    source=used[n - 1].source,
                    chunk_id=used[n - 1].chunk_id,
                    score=used[n - 1].score,
                )
                for n in cited_numbers(answer)
            ]
        )
        return {"answer": answer, "refused": refused, "citations": citations, "next": "store"}

    # --- store_and_update_memory -----------------------------------------------------------
    def store_and_update_memory(self, run: RunContext, state: RunState) -> dict[str, Any]:
        request, scope, routed = run.request, run.scope, state["routed"]
        assert request is not None and scope is not None
        answer, refused = state["answer"], state["refused"]
        meta = {"trace_id": run.trace_id}
        reply = {
            **meta,
            "model": routed.model,
            "refused": refused,
            "citations": [c.chunk_id for c in state["citations"]],
            "prompt": run.prompt.model_dump() if run.prompt else None,
        }
        version = self.conversation.append(
            scope, [Turn("user", request.input, meta), Turn("assistant", answer, reply)]
        ).version
        self.short_term.add(scope, "user", request.input, meta)
        self.short_term.add(scope, "assistant", answer, reply)
        record = {"status": "refused" if refused else "answered", "state_version": version}
        self.working.put(scope, f"request:{run.trace_id}", {**reply, **record, "at": time.time()})
        fact = fact_worth_keeping(request.input)
        if fact is not None:
            self.long_term.remember(
                request.tenant,
                request.user,
                fact,
                {"kind": "fact", "session": scope.session, "trace_id": run.trace_id},
            )
        return {"state_version": version}


def _models_failed(exc: Exception) -> ModelsFailedError:
    return ModelsFailedError(
        f"no model could answer the request: {exc}", attempts=getattr(exc, "attempts", ())
    )
