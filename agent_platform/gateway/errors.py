"""The gateway's own errors (raised by `serving.py`, which knows nothing of HTTP); `problems.py`
maps them, and the runtime's errors, to problem details."""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Base class of errors the serving layer raises to the edge."""


class UnknownServedAgentError(GatewayError, LookupError):
    """`model` names an agent that is neither registered nor the serving agent (or no version)."""


class SessionNotFoundError(GatewayError, LookupError):
    """The session has no versions for this tenant and user."""


class InvalidInputError(GatewayError, ValueError):
    """A field the wire schema accepts but the agent cannot use (no user message, say)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.errors: list[dict[str, Any]] = [{"loc": field.split("."), "msg": message}]


class SaturatedError(GatewayError):
    """The worker already runs its maximum of concurrent requests."""

    def __init__(self, limit: int, retry_after_s: int) -> None:
        super().__init__(
            f"the worker is serving its limit of {limit} concurrent requests; retry after "
            f"{retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


class DeadlineExceededError(GatewayError, TimeoutError):
    """The request did not finish within its timeout."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the agent did not answer within {timeout_s:g} s")
        self.timeout_s = timeout_s


class BodyTooLargeError(GatewayError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body: larger than the limit of {limit} bytes")
        self.limit = limit


class ShuttingDownError(GatewayError):
    """The worker is draining after SIGTERM and takes no new requests."""
