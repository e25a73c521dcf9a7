"""The CLI's one error boundary: every failure becomes one line on stderr and an exit status.

A person reads what failed, which input caused it and what to do; the traceback is for whoever
debugs the platform, shown with `agent-platform --debug …` or `AGENT_PLATFORM_DEBUG=1`. Exit
status: 1 an operation failed, 2 the input or the configuration is invalid (click's usage errors
use 2 as well).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

DEBUG_ENV = "AGENT_PLATFORM_DEBUG"
MLFLOW_LEVEL_ENV = "MLFLOW_LOGGING_LEVEL"
USAGE = 2  # click's exit status of a usage error, used for invalid input and configuration
DEBUG_HINT = f"rerun with --debug (or {DEBUG_ENV}=1) for the traceback"
_SECRET_IN_URI = re.compile(r"(\w+://[^:/@\s]+):[^@\s]+@")

# Libraries whose connection errors mean a configured service is down or misaddressed.
_SERVICES = {
    "redis": ("Redis", "redis_url (AGENT_PLATFORM_REDIS_URL)"),
    "limits": ("the rate-limit store (Redis)", "redis_url (AGENT_PLATFORM_REDIS_URL)"),
    "psycopg": ("PostgreSQL", "postgres_url (AGENT_PLATFORM_POSTGRES_URL)"),
    "psycopg2": ("PostgreSQL", "postgres_url (AGENT_PLATFORM_POSTGRES_URL)"),
    "sqlalchemy": ("the database", "postgres_url / mlflow_tracking_uri"),
    "weaviate": ("Weaviate", "weaviate_url (AGENT_PLATFORM_WEAVIATE_URL)"),
}


def debug_requested(ctx: typer.Context | None = None) -> bool:
    """`--debug` on the command line or AGENT_PLATFORM_DEBUG set to a true value."""
    if ctx is not None and ctx.find_root().params.get("debug"):
        return True
    return os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def one_line(text: str) -> str:
    """Collapse whitespace (multi-line messages stay readable) and hide URI passwords."""
    return _SECRET_IN_URI.sub(r"\1:***@", " ".join(str(text).split()))


def _is_error_of(exc: BaseException, *modules: str) -> bool:
    return any(cls.__module__.split(".")[0] in modules for cls in type(exc).__mro__)


def _service_error(exc: BaseException) -> tuple[str, int] | None:
    for cls in type(exc).__mro__:
        root = cls.__module__.split(".")[0]
        name = cls.__name__
        if root in _SERVICES and any(
            word in name for word in ("Connection", "Operational", "Timeout", "Storage")
        ):
            service, setting = _SERVICES[root]
            return (
                f"cannot reach {service}: {str(exc).rstrip('.')}; check the setting {setting} "
                "and that the service is running",
                1,
            )
    return None


def _settings_error(exc: ValidationError) -> tuple[str, int]:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    source = os.environ.get("AGENT_PLATFORM_CONFIG_FILE")
    origin = f"the settings file {source} or " if source else ""
    return (
        f"invalid configuration ({exc.title}): {'; '.join(problems)}; fix it in {origin}"
        "the AGENT_PLATFORM_* environment variables",
        2,
    )


def describe(exc: BaseException) -> tuple[str, int]:
    """(one-line message, exit status) for an exception that escaped a command."""
    from agent_platform.cli.worker import WorkerNotInstalledError
    from agent_platform.delivery.controller import RolloutError
    from agent_platform.model_registry import ModelRegistryError
    from agent_platform.prompts.errors import PromptError
    from agent_platform.runtime.errors import AgentRunError, RequestValidationError
    from agent_platform.settings import ConfigError
    from agent_platform.vectorstore.base import VectorStoreError

    if isinstance(exc, ConfigError):
        return str(exc), 2
    if isinstance(exc, ValidationError):
        if exc.title.endswith("Settings"):
            return _settings_error(exc)
        return f"invalid input ({exc.title}): {exc}", 2
    if isinstance(exc, AgentRunError):
        ids = f" (trace_id: {exc.trace_id}, session_id: {exc.session_id})" if exc.trace_id else ""
        return f"{exc}{ids}", 2 if isinstance(exc, RequestValidationError) else 1
    # refusals and setup the operator can act on, each worded for them: a wrong role, an unknown
    # version, nothing to roll back, dagster-celery not installed
    operational = (
        VectorStoreError,
        PromptError,
        RolloutError,
        ModelRegistryError,
        WorkerNotInstalledError,
    )
    if isinstance(exc, operational):
        return str(exc), 1
    service = _service_error(exc)
    if service is not None:
        return service
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}; check the path and its permissions", 1
    if _is_error_of(exc, "mlflow"):
        return f"MLflow: {exc}; check the setting mlflow_tracking_uri", 1
    notes = "; ".join(n for n in getattr(exc, "__notes__", ()) if "trace_id" in n)
    detail = f" [{notes}]" if notes else ""
    return f"unexpected {type(exc).__name__}: {exc}{detail}; {DEBUG_HINT}", 1


def report(exc: BaseException) -> int:
    """Print the one-line message for `exc` on stderr; returns the exit status."""
    message, status = describe(exc)
    typer.echo(f"error: {one_line(message)}", err=True)
    return status


class _StderrLines(logging.Handler):
    """Library log records as lines on the current stderr; per-request records only under
    --debug (the command reports its own outcome and the request log keeps every request:
    unconfigured, they printed as bare `agent request ModelsFailedError` lines)."""

    def __init__(self, debug: bool) -> None:
        super().__init__(logging.DEBUG if debug else logging.WARNING)
        self.debug = debug
        fmt = "%(levelname)s %(name)s: %(message)s" if debug else "warning: %(message)s"
        self.setFormatter(logging.Formatter(fmt))

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.debug and record.name == "agent_platform.runtime.agent":
            return record.levelno >= logging.ERROR
        return super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            typer.echo(text if self.debug else one_line(text), err=True)
        except Exception:
            self.handleError(record)


def configure_logging(ctx: typer.Context, debug: bool) -> None:
    """Send the library's log records to stderr for the duration of the command; MLflow's
    INFO lines (its database migration on a fresh home) only under --debug."""
    handler = _StderrLines(debug)
    library, mlflow = logging.getLogger("agent_platform"), logging.getLogger("mlflow")
    levels = library.level, mlflow.level
    library.addHandler(handler)
    if debug:
        library.setLevel(logging.DEBUG)
    else:  # MLflow configures its logger when first imported, later in the command
        os.environ.setdefault(MLFLOW_LEVEL_ENV, "WARNING")
        mlflow.setLevel(logging.WARNING)
    ctx.call_on_close(lambda: _restore(handler, levels))


def _restore(handler: logging.Handler, levels: tuple[int, int]) -> None:
    library, mlflow = logging.getLogger("agent_platform"), logging.getLogger("mlflow")
    library.removeHandler(handler)
    library.setLevel(levels[0])
    mlflow.setLevel(levels[1])


class ErrorReportingGroup(TyperGroup):
    """The root command: turns what escapes a sub-command into `report`'s line and status."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        try:
            return super().parse_args(ctx, args)
        except typer.TyperException as exc:  # a bad root option, before --debug is known
            _usage_error(exc, ctx)

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except typer.TyperException as exc:  # click's errors, vendored by typer
            _usage_error(exc, ctx)
        except Exception as exc:
            if debug_requested(ctx):
                raise
            raise typer.Exit(report(exc)) from None


def _usage_error(exc: Exception, ctx: typer.Context) -> NoReturn:
    """A usage error as one line pointing at the failing command's --help (exit status 2);
    other click errors are left to typer, as is everything under --debug."""
    help_shown = type(exc).__name__ == "NoArgsIsHelpError"  # its message is the help page
    if help_shown or debug_requested(ctx) or getattr(exc, "exit_code", 1) != USAGE:
        raise exc
    failed = getattr(exc, "ctx", None) or ctx
    message = one_line(exc.format_message()).rstrip(".")  # type: ignore[attr-defined]
    typer.echo(f"error: {message}; see '{failed.command_path} --help'", err=True)
    raise typer.Exit(USAGE) from None
