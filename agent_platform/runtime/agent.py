"""`AgentRuntime`: answer requests for a tenant with the workflow graph; the public Python API.

    runtime = AgentRuntime.from_settings()
    response = runtime.run(tenant="acme", user="alice", input="How long do refunds take?")
    response.answer, response.citations, response.trace_id, response.state_version

`arun` is the asyncio twin, `astream` yields the answer while the model writes it (streaming.py
says what may be shown before it is final), and `batch`/`abatch` run many requests at once;
whatever the callers do, at most `max_concurrent_model_calls` (10) model calls run at the same
time. Every request runs in a span `invoke_agent <agent>` whose trace id is returned (or set on
the error raised), is counted in Prometheus metrics with its prompt version and A/B variant, is
written to the request log and logged as one JSON line (`agent_platform.runtime.agent` logger,
via `JsonLogFormatter`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from langchain_core.messages import AIMessageChunk
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from agent_platform.knowledge.service import KnowledgeBase
from agent_platform.runtime.access import AccessPolicy
from agent_platform.runtime.agent_config import AgentConfig
from agent_platform.runtime.assembly import build_services
from agent_platform.runtime.catalogue import ModelCatalogue
from agent_platform.runtime.config import RuntimeSettings
from agent_platform.runtime.errors import AgentRunError, RequestDeadlineError
from agent_platform.runtime.grounding import output_problem
from agent_platform.runtime.memory import (
    ConversationState,
    MemoryScope,
    VersionInfo,
    write_together,
)
from agent_platform.runtime.phases import AgentServices
from agent_platform.runtime.request_log import (
    RequestLog,
    RequestMetrics,
    retrieved_chunks,
    span_attributes,
)
from agent_platform.runtime.response import AgentResponse, Usage
from agent_platform.runtime.streaming import (
    AnswerDelta,
    AnswerRelease,
    StreamedAnswer,
    StreamEvent,
)
from agent_platform.runtime.telemetry import Telemetry, record_exception
from agent_platform.runtime.workflow import RunContext, WorkflowNodes
from agent_platform.security.crypto import value_cipher
from agent_platform.settings import Settings, get_settings

logger = logging.getLogger(__name__)
RequestLike = Mapping[str, Any]


class AgentRuntime:
    """Serves one `AgentConfig` over the platform's knowledge, prompts, models and memory."""

    def __init__(self, settings: Settings, services: AgentServices, request_log: RequestLog):
        self.settings = settings
        self.services = services
        self.request_log = request_log
        self.request_metrics = RequestMetrics(services.telemetry.metrics.registry)
        nodes = WorkflowNodes(services)
        self.graph = nodes.build(asynchronous=False)
        self.async_graph = nodes.build(asynchronous=True)
        self._streams: set[asyncio.Task[None]] = set()  # runs of `astream`, until they finish

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        agent: AgentConfig | None = None,
        runtime_settings: RuntimeSettings | None = None,
        *,
        knowledge: KnowledgeBase | None = None,
        access: AccessPolicy | None = None,
        max_concurrent_model_calls: int = 10,
    ) -> AgentRuntime:
        """Build every service from settings (backends follow `Settings`: SQLite/Redis/Postgres)."""
        settings = settings or get_settings()
        value_cipher(settings)  # a missing or wrong key fails here, before anything is opened
        from agent_platform.model_registry.serving import champion_version, evaluated_model_quality

        model_id = ""  # the served version's MLflow LoggedModel, which its traces link to
        if agent is None:  # serve the registered champion; the default config before any promotion
            champion = champion_version(settings, settings.serving_agent)
            agent = champion.config() if champion else AgentConfig()
            model_id = champion.model_id if champion else ""
        services = build_services(
            settings,
            agent,
            runtime_settings or RuntimeSettings(),
            knowledge=knowledge,
            access=access,
            max_concurrent_model_calls=max_concurrent_model_calls,
            model_id=model_id,
        )
        # evaluation scores replace the catalogue's quality priors in quality-aware routing
        for model, score in evaluated_model_quality(settings, agent.name).items():
            services.router.performance.record_quality(model, score)
        log = RequestLog(
            settings.home_dir / "runtime" / "requests.jsonl", cipher=value_cipher(settings)
        )
        return cls(settings, services, log)

    # --- conveniences ----------------------------------------------------------------------
    @property
    def agent(self) -> AgentConfig:
        return self.services.agent

    @property
    def catalogue(self) -> ModelCatalogue:
        return self.services.router.catalogue

    @property
    def telemetry(self) -> Telemetry:
        return self.services.telemetry

    def graph_mermaid(self) -> str:
        """The workflow graph as a Mermaid flowchart."""
        chart: str = self.graph.get_graph().draw_mermaid()
        return chart

    # --- running ---------------------------------------------------------------------------
    def _start(self, span: Span, session_id: str | None) -> RunContext:
        trace_id = format(span.get_span_context().trace_id, "032x")
        sid = session_id if isinstance(session_id, str) and session_id.strip() else None
        return RunContext(trace_id, otel_context.get_current(), sid or uuid.uuid4().hex)

    def _span(self) -> AbstractContextManager[Span]:
        return self.telemetry.tracer.start_as_current_span(
            f"invoke_agent {self.agent.name}",
            kind=trace.SpanKind.SERVER,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": self.agent.name,
            },
            record_exception=False,
            set_status_on_exception=False,
        )

    def run(
        self, *, tenant: str, user: str, input: str, session_id: str | None = None
    ) -> AgentResponse:
        """Answer one request. Raises an `AgentRunError` subclass (or `RateLimitExceeded`)."""
        raw = {"tenant": tenant, "user": user, "input": input, "session_id": session_id}
        with self._span() as span:
            run, started = self._start(span, session_id), time.perf_counter()
            try:
                final = self.graph.invoke({"run": run, "raw": raw})
            except Exception as exc:
                self._failed(run, span, exc, started)
                raise
            return self._finish(run, span, final, started)

    async def arun(
        self, *, tenant: str, user: str, input: str, session_id: str | None = None
    ) -> AgentResponse:
        """`run` for asyncio: model calls are awaited, blocking I/O runs in worker threads."""
        raw = {"tenant": tenant, "user": user, "input": input, "session_id": session_id}
        with self._span() as span:
            run, started = self._start(span, session_id), time.perf_counter()
            try:
                final = await self.async_graph.ainvoke({"run": run, "raw": raw})
            except Exception as exc:
                self._failed(run, span, exc, started)
                raise
            return self._finish(run, span, final, started)

    async def astream(
        self,
        *,
        tenant: str,
        user: str,
        input: str,
        session_id: str | None = None,
        deadline_s: float | None = None,
    ) -> AsyncGenerator[StreamEvent]:
        """`arun`, yielding the answer while the model writes it: `AnswerDelta`s (Gemma's words
        as they come; a model that does not stream, such as the extractive one, gives none), then
        one `StreamedAnswer`. Errors are raised as `arun` raises them.

        The run belongs to the request, not to the reader: it runs in a task of its own, so a
        reader that stops early (a client that disconnected) does not cut it short. The answer is
        still validated, stored in memory and recorded, with `delivery: "abandoned"` in the
        request log. `deadline_s` bounds the run either way: past it, the run is cancelled,
        recorded as `DeadlineExceeded` and `RequestDeadlineError` raised."""
        raw = {"tenant": tenant, "user": user, "input": input, "session_id": session_id}
        queue: asyncio.Queue[StreamEvent | BaseException] = asyncio.Queue()
        reader = _Reader()
        task = asyncio.create_task(self._stream_run(raw, queue, reader, deadline_s))
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)
        task.add_done_callback(
            lambda t: queue.put_nowait(asyncio.CancelledError()) if t.cancelled() else None
        )
        try:
            while True:
                event = await queue.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, StreamedAnswer):
                    return
        finally:
            reader.gone = not task.done()

    async def finish_streams(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for `astream` runs whose readers left; how many are still
        running after it (call before `close`, so their memory writes land)."""
        pending = set(self._streams)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=timeout_s)
        return len(pending)

    async def _stream_run(
        self,
        raw: dict[str, Any],
        queue: asyncio.Queue[StreamEvent | BaseException],
        reader: _Reader,
        deadline_s: float | None,
    ) -> None:
        with self._span() as span:
            run, started = self._start(span, raw["session_id"]), time.perf_counter()
            state: dict[str, Any] = {}
            release: AnswerRelease | None = None
            try:
                async with asyncio.timeout(deadline_s):
                    async for mode, payload in self.async_graph.astream(
                        {"run": run, "raw": raw}, stream_mode=["values", "messages"]
                    ):
                        if mode == "values":
                            state = payload
                            continue
                        chunk, meta = payload
                        if not isinstance(chunk, AIMessageChunk) or (
                            meta.get("langgraph_node") != "execute_model"
                        ):
                            continue
                        release = release or AnswerRelease(self._releasable(state))
                        piece = release.feed(chunk.id or "", chunk.text)
                        if piece:
                            queue.put_nowait(AnswerDelta(piece))
            except TimeoutError:
                error = RequestDeadlineError(deadline_s or 0.0)
                self._failed(run, span, error, started)
                queue.put_nowait(error)
                return
            except Exception as exc:
                self._failed(run, span, exc, started)
                queue.put_nowait(exc)
                return
            extra = {"delivery": "abandoned"} if reader.gone else {}
            response = self._finish(run, span, state, started, **extra)
            remainder, replaced = (
                release.finish(response.answer) if release else (response.answer, False)
            )
            queue.put_nowait(StreamedAnswer(response, remainder, replaced))

    def _releasable(self, state: dict[str, Any]) -> Any:
        """The checks a streamed prefix must pass (see streaming.py): those of validate_output
        and of the data-protection guard, on the sources this request was given."""
        sources, limit = len(state.get("used", [])), self.agent.max_output_tokens
        protection = self.services.protection

        def check(text: str) -> bool:
            if output_problem(text, sources=sources, max_output_tokens=limit) is not None:
                return False
            return protection.releasable(text)

        return check

    async def abatch(
        self,
        requests: Iterable[RequestLike],
        *,
        max_concurrency: int = 10,
        return_exceptions: bool = False,
    ) -> list[AgentResponse | BaseException]:
        """Run requests (mappings of `run`'s arguments) concurrently; results in input order."""
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency: must be >= 1, got {max_concurrency}")
        gate = asyncio.Semaphore(max_concurrency)

        async def one(request: RequestLike) -> AgentResponse:
            async with gate:
                return await self.arun(**dict(request))

        return await asyncio.gather(
            *(one(r) for r in requests), return_exceptions=return_exceptions
        )

    def batch(
        self,
        requests: Iterable[RequestLike],
        *,
        max_concurrency: int = 10,
        return_exceptions: bool = False,
    ) -> list[AgentResponse | BaseException]:
        """`abatch` from synchronous code (runs its own event loop)."""
        return asyncio.run(
            self.abatch(
                list(requests), max_concurrency=max_concurrency, return_exceptions=return_exceptions
            )
        )

    # --- conversation state ----------------------------------------------------------------
    def _scope(self, session_id: str, tenant: str, user: str) -> MemoryScope:
        return MemoryScope(tenant, user, session_id)

    def history(self, session_id: str, *, tenant: str, user: str) -> list[VersionInfo]:
        return self.services.conversation.versions(self._scope(session_id, tenant, user))

    def conversation(
        self, session_id: str, *, tenant: str, user: str, version: int | None = None
    ) -> ConversationState:
        scope = self._scope(session_id, tenant, user)
        store = self.services.conversation
        return store.current(scope) if version is None else store.get_version(scope, version)

    def rollback(
        self, session_id: str, version: int, *, tenant: str, user: str
    ) -> ConversationState:
        """Make `version` of the session current again (as a new version); short-term memory
        is refilled from it, so the next request sees the restored conversation."""
        scope = self._scope(session_id, tenant, user)
        conversation, short_term = self.services.conversation, self.services.short_term
        with write_together(conversation, short_term):
            state = conversation.rollback(scope, version)
            short_term.clear(scope)
            short_term.add_many(scope, [(t.role, t.content, dict(t.metadata)) for t in state.turns])
        return state

    # --- outcome ---------------------------------------------------------------------------
    def _finish(
        self, run: RunContext, span: Span, final: dict[str, Any], started: float, **extra: str
    ) -> AgentResponse:
        routed = final["routed"]
        latency = {**run.timings, "total": (time.perf_counter() - started) * 1000.0}
        response = AgentResponse(
            answer=final["answer"],
            citations=final["citations"],
            model=routed.model,
            prompt=run.prompt,  # type: ignore[arg-type]  # set by prepare_prompt; validated
            user_prompt=final.get("user_prompt"),
            usage=Usage(input_tokens=routed.input_tokens, output_tokens=routed.output_tokens),
            cost=routed.cost_usd,
            latency_ms=latency,
            trace_id=run.trace_id,
            session_id=run.session_id,
            state_version=final["state_version"],
            refused=final["refused"],
            retrieved=retrieved_chunks(  # type: ignore[arg-type]  # dicts Pydantic validates
                final.get("hits", []), final.get("used", []), self.services.protection.mask_chunk
            ),
            agent=self.agent.name,
            context=final["context"],
        )
        outcome = "refused" if response.refused else "answered"
        record = self._record(run, outcome, latency)
        record |= {"model": response.model, "state_version": response.state_version, **extra}
        span.set_attributes(span_attributes(run, outcome, response))
        span.set_status(Status(StatusCode.OK))
        self._emit(record, logging.INFO)
        return response

    def _failed(self, run: RunContext, span: Span, exc: Exception, started: float) -> None:
        latency = {**run.timings, "total": (time.perf_counter() - started) * 1000.0}
        if isinstance(exc, AgentRunError):
            exc.trace_id, exc.session_id = run.trace_id, run.session_id
            exc.phase = exc.phase or run.failed_phase or ""
        else:
            exc.add_note(f"trace_id={run.trace_id} session_id={run.session_id}")
        outcome = getattr(exc, "outcome", None) or type(exc).__name__
        message = self.services.protection.mask(str(exc)[:2000])  # logs keep no personal data
        record = self._record(run, outcome, latency) | {
            "error": message,
            "phase": run.failed_phase,
        }
        if run.scope is not None:
            entry = {k: record[k] for k in ("error", "phase", "prompt", "trace_id")}
            try:
                self.services.working.put(
                    run.scope, f"request:{run.trace_id}", {"status": "failed", **entry}
                )
            except Exception:  # the original error matters more than the record
                logger.exception("could not record the failed request in working memory")
        span.set_attributes(span_attributes(run, outcome, None))
        record_exception(span, exc, message)
        span.set_status(Status(StatusCode.ERROR, message[:500]))
        self._emit(record, logging.WARNING)

    def _record(self, run: RunContext, outcome: str, latency: dict[str, float]) -> dict[str, Any]:
        request = run.request
        return {
            "trace_id": run.trace_id,
            "session_id": run.session_id,
            "tenant": request.tenant if request else None,
            "user": request.user if request else None,
            "agent": self.agent.name,
            "outcome": outcome,
            "prompt": run.prompt.model_dump() if run.prompt else None,
            "latency_ms": {k: round(v, 3) for k, v in latency.items()},
        }

    def _emit(self, record: dict[str, Any], level: int) -> None:
        self.request_metrics.observe(record)
        self.request_log.write(record)
        if logger.isEnabledFor(level):
            extra = {k: v for k, v in record.items() if k not in {"latency_ms", "prompt"}}
            extra["latency_ms_total"] = record["latency_ms"].get("total")
            if record.get("prompt"):
                extra["prompt_version"] = record["prompt"]["version"]
                extra["prompt_variant"] = record["prompt"].get("variant") or "none"
            failed = f": {record['error']}" if record.get("error") else ""
            logger.log(level, "agent request %s%s", record["outcome"], failed, extra=extra)

    def close(self) -> None:
        s = self.services
        s.router.close()
        for closable in (s.conversation, s.working, s.short_term, s.long_term, s.knowledge):
            close = getattr(closable, "close", None)
            if close is not None:
                close()
        self.request_log.close()
        s.telemetry.shutdown()

    def __enter__(self) -> AgentRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Reader:
    """Whether the reader of an `astream` left before its run finished."""

    gone = False
