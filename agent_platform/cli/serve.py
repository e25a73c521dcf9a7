"""`agent-platform serve`: the HTTP gateway on uvicorn (uvloop event loop, httptools parser).

Mount in `cli/main.py`::

    from agent_platform.cli.serve import serve
    app.command("serve")(serve)

Each worker process builds the app from the environment's settings (`create_app` as a factory) and
loads models and indexes in its lifespan before it accepts traffic. On SIGTERM uvicorn stops
accepting, lets in-flight requests finish within `serving.graceful_shutdown_s`, then the lifespan
flushes telemetry, request logs and memory writes.

TLS: with `serving.tls_cert_file` and `serving.tls_key_file` set, the gateway speaks TLS 1.3 only
and re-reads the files when they change (`agent_platform.gateway.tls`); production requires it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from agent_platform.gateway.tls import TLSContextFactory
    from agent_platform.settings import Settings

APP_FACTORY = "agent_platform.gateway.app:create_app"


def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default: serving.host, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port (default: serving.port, 8080).", min=0, max=65535)
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: serving.workers, 1).", min=1)
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log every request line.")] = False,
) -> None:
    """Serve the registered agents over HTTP (OpenAI-compatible /v1/chat/completions and more)."""
    import uvicorn

    from agent_platform.settings import get_settings

    settings = get_settings()
    serving = settings.serving
    tls = _checked_tls(settings)
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host or serving.host,
        port=serving.port if port is None else port,
        workers=workers or serving.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        timeout_graceful_shutdown=round(serving.graceful_shutdown_s) or None,
        timeout_worker_healthcheck=serving.worker_healthcheck_timeout_s,
        log_level=log_level,
        access_log=access_log,
        server_header=False,
        ssl_context_factory=tls,
    )


def _checked_tls(settings: Settings) -> TLSContextFactory | None:
    """Fail at start, with one line, on a missing key or bad TLS files; the TLS factory or None."""
    from agent_platform.gateway.tls import TLSConfigError, tls_factory
    from agent_platform.security.crypto import EncryptionError, value_cipher

    try:
        value_cipher(settings)
        return tls_factory(settings.serving, settings.profile)
    except (EncryptionError, TLSConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
