"""The application factory: one `AgentServer` per worker, loaded in the lifespan (so the worker
accepts traffic only once models and indexes are open), routes, middleware and the single place
where exceptions become problem details.

    uvicorn --factory agent_platform.gateway.app:create_app   # what `agent-platform serve` runs
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from agent_platform.gateway.api_router import NotReadyError, not_ready_problem, probes, router
from agent_platform.gateway.auth import install_security
from agent_platform.gateway.errors import GatewayError
from agent_platform.gateway.metrics import GatewayMetrics
from agent_platform.gateway.middleware import (
    BodyLimitMiddleware,
    ConcurrencyLimitMiddleware,
    GatewayMiddleware,
)
from agent_platform.gateway.operations_metrics import OperationsCollector
from agent_platform.gateway.problems import PROBLEM_JSON, ProblemResponse, from_exception, problem
from agent_platform.gateway.serving import AgentServer
from agent_platform.model_registry.errors import ModelRegistryError
from agent_platform.prompts.errors import PromptNotFoundError
from agent_platform.runtime.errors import AgentRunError
from agent_platform.runtime.memory import VersionNotFoundError
from agent_platform.runtime.rate_limit import RateLimitExceeded
from agent_platform.security.errors import SecurityError
from agent_platform.settings import Settings, get_settings

logger = logging.getLogger(__name__)
API_VERSION = "1.0.0"


def _render(request: Request, answer: ProblemResponse) -> JSONResponse:
    body = answer.problem.model_copy(
        update={"instance": request.url.path, "trace_id": getattr(request.state, "trace_id", None)}
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=body.status,
        headers=answer.headers,
        media_type=PROBLEM_JSON,
    )


async def _library_error(request: Request, exc: Exception) -> JSONResponse:
    answer = from_exception(exc)
    if answer.problem.status >= 500:
        logger.warning("request failed (trace_id=%s): %s", request.state.trace_id, exc)
    return _render(request, answer)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # nosec B101  # the handler is registered for this exception type only
    errors = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ())]
        if loc and loc[0] in {"body", "query", "path", "header"} and len(loc) > 1:
            loc = loc[1:] if loc[0] == "body" else loc
        errors.append({"loc": loc, "msg": str(error.get("msg", "invalid value"))})
    first = errors[0] if errors else {"loc": ["request"], "msg": "invalid request"}
    detail = f"{'.'.join(first['loc']) or 'request'}: {first['msg']}"
    return _render(request, problem(422, detail, errors=errors))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)  # nosec B101  # the handler is registered for this exception type only
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    answer = problem(exc.status_code, detail)
    answer.headers.update(exc.headers or {})
    return _render(request, answer)


async def _not_ready(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotReadyError)  # nosec B101  # the handler is registered for this exception type only
    return _render(request, not_ready_problem(exc))


def create_app(settings: Settings | None = None, *, server: AgentServer | None = None) -> FastAPI:
    """The gateway for `settings` (default: the environment's). Nothing loads until startup."""
    settings = settings or get_settings()
    server = server or AgentServer(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(server.start)
        logger.info("gateway ready: %s version %s", settings.serving_agent, server.serving_label())
        try:
            yield
        finally:  # after in-flight requests finished (or the grace period ran out)
            server.draining = True
            await server.finish_streams(settings.serving.graceful_shutdown_s)
            await asyncio.to_thread(server.close)
            logger.info("gateway stopped: telemetry, request logs and memory flushed")

    app = FastAPI(
        title="agent-platform gateway",
        version=API_VERSION,
        summary="Registered agents over an OpenAI-compatible HTTP API.",
        lifespan=lifespan,
    )
    app.state.server = server
    app.state.hooks = []  # authentication and policy (see middleware.RequestHook)
    install_security(app, settings)
    app.state.metrics = GatewayMetrics(
        lambda: [(s.agent, s.label, s.runtime.telemetry.metrics.registry) for s in server.loaded()]
    )
    app.state.metrics.registry.register(
        OperationsCollector(
            settings, lambda: [settings.serving_agent, *(s.agent for s in server.loaded())]
        )
    )
    for error in (
        AgentRunError,
        GatewayError,
        RateLimitExceeded,
        ModelRegistryError,
        VersionNotFoundError,
        PromptNotFoundError,
        SecurityError,
    ):
        app.add_exception_handler(error, _library_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(NotReadyError, _not_ready)
    app.include_router(router)
    app.include_router(probes)
    serving = settings.serving
    app.add_middleware(BodyLimitMiddleware, limit=serving.max_body_bytes)
    app.add_middleware(
        ConcurrencyLimitMiddleware,
        limit=serving.max_concurrent_requests,
        retry_after_s=serving.retry_after_s,
    )
    app.add_middleware(GatewayMiddleware, metrics=app.state.metrics, version=server.serving_label)
    return app
