"""Thin FastAPI routes: parse the wire model, resolve the agent version, call `AgentServer`,
serialise. Errors propagate as exceptions and become problem details in `app.py`'s handlers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import WithJsonSchema

from agent_platform.gateway.metrics import CONTENT_TYPE
from agent_platform.gateway.problems import PROBLEM_JSON, ProblemResponse, from_exception, problem
from agent_platform.gateway.protocol import (
    MODEL_PATTERN,
    NOT_BLANK,
    TENANT_PATTERN,
    AgentView,
    ChatCompletion,
    ChatCompletionRequest,
    Health,
    Problem,
    RollbackRequest,
    RollbackResult,
    RunRequest,
    SessionView,
)
from agent_platform.gateway.serving import (
    AgentServer,
    ChunkWriter,
    ServedVersion,
    parse_model,
    to_completion,
)
from agent_platform.runtime.response import AgentResponse
from agent_platform.runtime.streaming import StreamEvent

_PROBLEM_SCHEMA = Problem.model_json_schema()
_DESCRIPTIONS = {
    401: "Missing or invalid credentials (a bearer token or an API key).",
    403: "The policy denied the action; `detail` names the action and what is missing.",
    404: "Unknown agent, version, tenant or session.",
    413: "The request body is larger than the limit.",
    422: "A field is invalid; `errors` names it.",
    429: "A rate limit refused the request; see Retry-After.",
    502: "Every model failed or gave an invalid answer.",
    503: "No model can serve, the index is missing, or the worker is saturated; see Retry-After.",
    504: "The agent did not answer within the request timeout.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        s: {"description": _DESCRIPTIONS[s], "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}}}
        for s in statuses
    }


RUN_PROBLEMS = problems(401, 403, 404, 413, 422, 429, 502, 503, 504)


async def run_hooks(request: Request) -> None:
    """Authentication and policy hook points: each hook may refuse the request by raising."""
    for hook in request.app.state.hooks:
        await hook(request)


router = APIRouter(prefix="/v1", dependencies=[Depends(run_hooks)])
probes = APIRouter(tags=["operations"])

TenantHeader = Annotated[
    str,
    Header(
        alias="X-Tenant",
        pattern=TENANT_PATTERN,
        description="The tenant whose knowledge answers (until identity maps it from the token).",
    ),
]
# Optional headers are `X | None` in Python, but documented as the value they carry when sent:
# a header is absent or a string, never JSON null (FastAPI would add a `null` branch).
TimeoutHeader = Annotated[
    float | None,
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0}),
    Header(
        alias="X-Request-Timeout",
        gt=0,
        description="Seconds the caller will wait; it can shorten the server's timeout, never "
        "lengthen it.",
    ),
]
BodyTenantHeader = Annotated[
    str | None,
    WithJsonSchema({"type": "string", "pattern": TENANT_PATTERN}),
    Header(alias="X-Tenant", pattern=TENANT_PATTERN, description="Unless in the body."),
]


def _server(request: Request) -> AgentServer:
    server: AgentServer = request.app.state.server
    return server


async def _resolve(
    request: Request,
    model: str,
    caller: tuple[str | None, str | None] | None = None,
) -> ServedVersion:
    """The version answering `model`; for an agent request (`caller`: its user and session,
    either may be None), a rollout may route it to green."""
    server = _server(request)
    if caller is not None:
        user, session_id = caller
        agent = parse_model(model)[0]
        if not server.rollouts.fresh(agent):
            await asyncio.to_thread(server.rollouts.refresh, agent)
        model = server.route(model, user, session_id)
    served = server.cached(model)
    if served is None:
        served = await asyncio.to_thread(server.resolve, model)
    request.state.agent_version = served.label
    return served


def _timeout(request: Request, asked: float | None) -> float:
    limit = _server(request).config.request_timeout_s
    return min(limit, asked) if asked else limit


def _json(model: Any) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {
            "description": "A chat completion, or with `stream: true` Server-Sent Events of "
            "`chat.completion.chunk` objects ending with `data: [DONE]`.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **RUN_PROBLEMS,
    },
    tags=["openai"],
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    tenant: TenantHeader,
    timeout: TimeoutHeader = None,
) -> Response:
    """OpenAI-compatible chat completion: `model` names the agent, the last user message is
    the input, `user` the user and `metadata.session_id` the session."""
    session_id = (body.metadata or {}).get("session_id")
    served = await _resolve(request, body.model, (body.user, session_id))
    if body.stream:
        return await _stream(request, body, served, tenant, timeout)
    response = await _server(request).chat(
        body, served, tenant=tenant, timeout_s=_timeout(request, timeout)
    )
    return _json(to_completion(body.model, served, response))


async def _stream(
    request: Request,
    body: ChatCompletionRequest,
    served: ServedVersion,
    tenant: str,
    timeout: float | None,
) -> Response:
    """Server-Sent Events as the model writes. The first event is awaited before the response
    starts, so a request refused before its answer begins still gets its status and problem."""
    events = _server(request).stream_chat(
        body, served, tenant=tenant, timeout_s=_timeout(request, timeout)
    )
    first = await anext(events)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    writer = ChunkWriter(body.model, served, include_usage=include_usage)
    return StreamingResponse(_sse(request, writer, first, events), media_type="text/event-stream")


async def _sse(
    request: Request,
    writer: ChunkWriter,
    first: StreamEvent,
    events: AsyncGenerator[StreamEvent],
) -> AsyncIterator[str]:
    """The chunks, then `data: [DONE]`. A failure after the response started (the deadline,
    every model failing) is sent as an OpenAI-style `error` event before `[DONE]`, and its
    status is what the HTTP metrics count (`outcome_status`), not the 200 already sent."""
    yield _data(writer.start().model_dump_json(exclude_none=True))
    try:
        for chunk in writer.event(first):
            yield _data(chunk.model_dump_json(exclude_none=True))
        async for event in events:
            for chunk in writer.event(event):
                yield _data(chunk.model_dump_json(exclude_none=True))
    except Exception as exc:
        failed = from_exception(exc).problem
        request.state.outcome_status = failed.status
        error = {"message": failed.detail, "type": failed.title, "code": failed.status}
        yield _data(json.dumps({"error": error}))
    finally:
        await events.aclose()  # a client that left: the run goes on, recorded (see stream_chat)
    yield "data: [DONE]\n\n"


def _data(payload: str) -> str:
    return f"data: {payload}\n\n"


AgentPath = Annotated[str, Path(pattern=MODEL_PATTERN, description="Agent, optionally @version.")]


@router.post(
    "/agents/{agent}/runs", response_model=AgentResponse, responses=RUN_PROBLEMS, tags=["agents"]
)
async def create_run(
    agent: AgentPath,
    body: RunRequest,
    request: Request,
    tenant: BodyTenantHeader = None,
    timeout: TimeoutHeader = None,
) -> Response:
    """The native contract: the same object as `agent-platform run --json`."""
    served = await _resolve(request, agent, (body.user, body.session_id))
    response = await _server(request).run(
        served,
        tenant=body.tenant or tenant or "",
        user=body.user,
        input=body.input,
        session_id=body.session_id,
        timeout_s=_timeout(request, timeout),
    )
    return _json(response)


@router.get(
    "/agents/{agent}",
    response_model=AgentView,
    responses=problems(401, 403, 404, 422),
    tags=["agents"],
)
async def get_agent(agent: AgentPath, request: Request) -> Response:
    """The version serving `agent`: configuration, prompt versions, index snapshot, gates, and
    the hash of the authorization policy bundle in force."""
    served = await _resolve(request, agent)
    view = await asyncio.to_thread(_server(request).describe, served)
    bundle = getattr(request.state, "policy_bundle", None)
    return _json(view.model_copy(update={"policy_bundle": bundle}))


UserQuery = Annotated[
    str, Query(min_length=1, max_length=128, pattern=NOT_BLANK, description="The session's user.")
]
SessionPath = Annotated[str, Path(min_length=1, max_length=128)]


@router.get(
    "/sessions/{session_id}",
    response_model=SessionView,
    responses=problems(401, 403, 404, 422),
    tags=["sessions"],
)
async def get_session(
    session_id: SessionPath, user: UserQuery, request: Request, tenant: TenantHeader
) -> Response:
    """The versions of a session's conversation state."""
    server = _server(request)
    served = await _resolve(request, server.settings.serving_agent)
    view = await asyncio.to_thread(server.session, served, session_id, tenant=tenant, user=user)
    return _json(view)


@router.post(
    "/sessions/{session_id}/rollback",
    response_model=RollbackResult,
    responses=problems(401, 403, 404, 413, 422),
    tags=["sessions"],
)
async def rollback_session(
    session_id: SessionPath, body: RollbackRequest, request: Request, tenant: TenantHeader
) -> Response:
    """Make an earlier version of the session current again (written as a new version)."""
    server = _server(request)
    served = await _resolve(request, server.settings.serving_agent)
    result = await asyncio.to_thread(
        server.rollback, served, session_id, body.version, tenant=tenant, user=body.user
    )
    return _json(result)


@probes.get("/healthz", response_model=Health)
async def healthz() -> Response:
    """The process is alive (says nothing about whether it can answer)."""
    return _json(Health(status="ok"))


@probes.get("/readyz", response_model=Health, responses=problems(503))
async def readyz(request: Request) -> Response:
    """Ready: the served configuration resolved, indexes open, a model with a closed circuit."""
    server = _server(request)
    reasons = await asyncio.to_thread(server.not_ready_reasons)
    security = getattr(request.app.state, "security", None)
    warnings: list[str] = []
    if security is not None:
        failures, warnings = await asyncio.to_thread(security.readiness)
        reasons = [*reasons, *failures]
    if reasons:
        raise NotReadyError("; ".join(reasons))
    return _json(
        Health(
            status="ok",
            reasons=warnings,
            agent=server.settings.serving_agent,
            agent_version=server.serving_label(),
        )
    )


class NotReadyError(Exception):
    """The worker cannot serve yet (or any more); the message lists why."""


@probes.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:  # sync: the operations metrics read files, off the loop
    """Prometheus text: HTTP metrics and the loaded runtimes' metrics."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE)


def not_ready_problem(exc: NotReadyError) -> ProblemResponse:
    return problem(503, str(exc), retry_after=1)
