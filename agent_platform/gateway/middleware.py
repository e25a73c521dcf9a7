"""Cross-cutting concerns as pure ASGI middleware (no per-request task or body copy beyond the
bounded one): trace context and the X-Trace-Id / X-Agent-Version headers, HTTP metrics, the body
size bound and per-worker backpressure. Authentication and policy plug in as `RequestHook`s
(`app.state.hooks`), run by `api_router` before any /v1 route, once identity lands.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agent_platform.gateway.errors import BodyTooLargeError, SaturatedError
from agent_platform.gateway.metrics import GatewayMetrics
from agent_platform.gateway.problems import PROBLEM_JSON, ProblemResponse, from_exception

logger = logging.getLogger(__name__)
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]
_PROPAGATOR = TraceContextTextMapPropagator()
# A request hook sees the Starlette request and raises a GatewayError (or a library error) to
# refuse it: the authentication and policy issues add theirs here.
RequestHook = Callable[[Any], Awaitable[None]]


async def send_problem(send: Send, scope: Scope, answer: ProblemResponse) -> None:
    body = answer.problem.model_copy(
        update={"instance": scope.get("path"), "trace_id": scope["state"].get("trace_id")}
    ).model_dump(mode="json", exclude_none=True)
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in answer.headers.items()]
    await send({"type": "http.response.start", "status": answer.problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _trace_context(scope: Scope) -> tuple[otel_context.Context, str]:
    """The caller's W3C `traceparent` when valid, else a new trace; the runtime's spans become
    its children, so the id in X-Trace-Id is the trace id of the agent run."""
    carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    ctx = _PROPAGATOR.extract(carrier) if "traceparent" in carrier else otel_context.Context()
    span_context = trace.get_current_span(ctx).get_span_context()
    if not span_context.is_valid:
        span_context = SpanContext(
            trace_id=secrets.randbits(128) or 1,
            span_id=secrets.randbits(64) or 1,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        ctx = trace.set_span_in_context(NonRecordingSpan(span_context), ctx)
    return ctx, format(span_context.trace_id, "032x")


class GatewayMiddleware:
    """Outermost layer: trace context, response headers, metrics, and the 500 of last resort."""

    def __init__(self, app: ASGIApp, *, metrics: GatewayMetrics, version: Callable[[], str | None]):
        self.app, self.metrics, self.version = app, metrics, version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        ctx, state["trace_id"] = _trace_context(scope)
        token = otel_context.attach(ctx)
        started, status = time.perf_counter(), 500
        response_started = False

        async def sending(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                version = state.get("agent_version") or self.version() or "unresolved"
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-trace-id", state["trace_id"].encode()),
                    (b"x-agent-version", version.encode()),
                ]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, sending)
        except Exception as exc:  # the last resort: a problem, never a traceback, on the wire
            logger.exception("unhandled error (trace_id=%s)", state["trace_id"])
            if not response_started:
                await send_problem(sending, scope, from_exception(exc))
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            status = state.get("outcome_status", status)  # a stream that failed after its 200
            labels = (scope["method"], template, str(status), state.get("agent_version", "none"))
            self.metrics.duration.labels(*labels).observe(time.perf_counter() - started)
            self.metrics.requests.labels(*labels).inc()
            otel_context.detach(token)


class BodyLimitMiddleware:
    """Refuse a body over `limit` bytes with 413, reading at most limit+1 bytes of it."""

    def __init__(self, app: ASGIApp, *, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await send_problem(send, scope, from_exception(BodyTooLargeError(self.limit)))
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await send_problem(send, scope, from_exception(BodyTooLargeError(self.limit)))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class ConcurrencyLimitMiddleware:
    """At most `limit` /v1 requests at once in this worker; the next gets 503 + Retry-After at
    once (no queue: a queue only turns overload into timeouts)."""

    def __init__(self, app: ASGIApp, *, limit: int, retry_after_s: int):
        self.app, self.limit, self.retry_after_s = app, limit, retry_after_s
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            error = SaturatedError(self.limit, self.retry_after_s)
            await send_problem(send, scope, from_exception(error))
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
