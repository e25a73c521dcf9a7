"""Errors are data: every error the library or the gateway raises is mapped here, once, to an
RFC 9457 problem (status, title, detail, Retry-After). No traceback, file path or secret is ever
put in a response: details are the errors' one-line messages with paths masked."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from agent_platform.gateway import errors as gw
from agent_platform.gateway.protocol import Problem
from agent_platform.model_registry.errors import UnknownAgentError, UnknownVersionError
from agent_platform.prompts.errors import PromptNotFoundError
from agent_platform.runtime import errors as rt
from agent_platform.runtime.memory import VersionNotFoundError
from agent_platform.runtime.rate_limit import RateLimitExceeded
from agent_platform.security import errors as sec

PROBLEM_JSON = "application/problem+json"
_PATH = re.compile(r"(?<![\w:])(?:[A-Za-z]:)?(?:[/\\][\w.@+-]+){2,}[/\\]?")
_SECRET = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
DEFAULT_RETRY_AFTER_S = 5
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class ProblemResponse:
    """A problem and the headers that go with it."""

    problem: Problem
    headers: dict[str, str] = field(default_factory=dict)


def sanitize(message: str) -> str:
    """One line, at most 500 characters, file paths and URI passwords masked."""
    line = " ".join(message.split())
    return _PATH.sub("<path>", _SECRET.sub(r"\1***@", line))[:500]


def problem(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    retry_after: float | None = None,
    **kw: Any,
) -> ProblemResponse:
    headers = {} if retry_after is None else {"Retry-After": str(max(1, math.ceil(retry_after)))}
    body = Problem(
        title=TITLES.get(status, "Error"),
        status=status,
        detail=sanitize(detail),
        errors=errors,
        **kw,
    )
    return ProblemResponse(body, headers)


def _all_timeouts(exc: rt.ModelsFailedError) -> bool:
    tried = [a for a in exc.attempts if getattr(a, "outcome", "") == "error"]
    return bool(tried) and all("Timeout" in (a.error or "") for a in tried)


def from_exception(exc: BaseException) -> ProblemResponse:
    """The problem for any exception (500 with a generic detail for unexpected ones)."""
    match exc:
        case rt.RequestValidationError() | gw.InvalidInputError():
            errors = [
                {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))}
                for e in getattr(exc, "errors", [])
            ] or [{"loc": exc.field.split("."), "msg": str(exc)}]
            return problem(422, str(exc), errors=errors)
        case RateLimitExceeded():
            return problem(429, str(exc), retry_after=exc.retry_after_s)
        case (
            rt.UnknownTenantError()
            | gw.UnknownServedAgentError()
            | gw.SessionNotFoundError()
            | UnknownAgentError()
            | UnknownVersionError()
            | VersionNotFoundError()
        ):
            return problem(404, str(exc).strip("'\""))
        case rt.NotAuthorizedError() | sec.AccessDeniedError():
            return problem(403, str(exc))
        case sec.AuthenticationError():  # the same answer for every failure: no oracle
            answer = problem(401, sec.AuthenticationError.public_message)
            answer.headers["WWW-Authenticate"] = 'Bearer realm="agent-platform"'
            return answer
        case sec.AuthenticationUnavailableError() | sec.PolicyUnavailableError():
            return problem(503, str(exc).split(":")[0], retry_after=DEFAULT_RETRY_AFTER_S)
        case gw.SaturatedError():
            return problem(503, str(exc), retry_after=exc.retry_after_s)
        case gw.ShuttingDownError():
            return problem(503, str(exc) or "the worker is shutting down", retry_after=1)
        case PromptNotFoundError():  # the agent's prompt is not published: nothing can answer
            return problem(503, str(exc).strip("'\""), retry_after=DEFAULT_RETRY_AFTER_S)
        case rt.ResourceUnavailableError():
            return problem(503, str(exc), retry_after=DEFAULT_RETRY_AFTER_S)
        case gw.DeadlineExceededError():
            return problem(504, str(exc))
        case rt.ModelsFailedError() if _all_timeouts(exc):
            return problem(504, str(exc))
        case rt.ModelsFailedError() | rt.OutputValidationError():
            return problem(502, str(exc))
        case gw.BodyTooLargeError():
            return problem(413, str(exc))
        case _:
            return problem(500, "internal error; the trace id identifies the request in the logs")
