"""Errors an agent run raises to its caller. Each carries the trace id and session of the request.

Every error is also recorded (request log, and working memory when the request named a valid
tenant and user), so a failed request leaves a trace even though it has no answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class AgentRunError(RuntimeError):
    """Base class: a request that produced no answer. `phase` is the workflow node that failed."""

    def __init__(self, message: str, *, phase: str = "", **details: Any) -> None:
        super().__init__(message)
        self.phase = phase
        self.details = details
        self.trace_id: str = ""
        self.session_id: str = ""


class RequestValidationError(AgentRunError, ValueError):
    """A malformed, empty or oversized request; `field` names the offending field."""

    def __init__(self, field: str, message: str, errors: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(f"{field}: {message}", phase="validate")
        self.field = field
        self.errors = list(errors)


class UnknownTenantError(AgentRunError, LookupError):
    """The request names a tenant the platform does not know."""


class NotAuthorizedError(AgentRunError, PermissionError):
    """The caller may not use this tenant."""


class ResourceUnavailableError(AgentRunError):
    """Something the request needs is not available (no index yet, every model's circuit open)."""


class ModelsFailedError(AgentRunError):
    """Every model of the route failed (after retries and fallbacks) or gave an invalid answer."""

    def __init__(self, message: str, *, attempts: Sequence[Any] = ()) -> None:
        super().__init__(message, phase="execute_model")
        self.attempts = list(attempts)


class OutputValidationError(AgentRunError):
    """A model's answer failed output validation (empty, too long, or citing unknown sources)."""


class RequestDeadlineError(AgentRunError, TimeoutError):
    """The run did not finish within the deadline its caller gave (`AgentRuntime.astream`); it was
    cancelled and is recorded with the outcome `DeadlineExceeded`, as the gateway records one."""

    outcome = "DeadlineExceeded"

    def __init__(self, deadline_s: float) -> None:
        super().__init__(f"the agent did not answer within {deadline_s:g} s")
        self.deadline_s = deadline_s
