"""`agent-platform keys status|rotate`: the encryption key ring (see docs/data-protection.md).

Mount in `cli/main.py`::

    from agent_platform.cli.keys import keys_app
    app.add_typer(keys_app, name="keys")

A missing or wrong key, or an unreachable key service, ends with one line on stderr and exit 1.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from typing import Annotated

import typer

keys_app = typer.Typer(help="Encryption keys: status and rotation.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else "unknown"


@keys_app.command("status")
def status(as_json: JsonOption = False) -> None:
    """Key-encryption key versions, data keys per version, and whether rotation is due."""
    from agent_platform.security.crypto import EncryptionError, key_status
    from agent_platform.settings import get_settings

    settings = get_settings()
    if not settings.encryption.enabled:
        typer.echo("encryption at rest is off (AGENT_PLATFORM_ENCRYPTION_ENABLED=false)")
        return
    try:
        report = key_status(settings)
    except EncryptionError as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    typer.echo(f"key-encryption key: v{report.kek_version} from {report.source}")
    for v in report.kek_versions:
        state = f"retired {_when(v['retired_at'])}" if v["retired_at"] else "active"
        typer.echo(f"  v{v['version']}: {v['data_keys']} data key(s), {state}")
    due = "due now" if report.due else f"every {report.rotation_days} days"
    typer.echo(
        f"data keys: {report.data_keys} for {report.tenants} tenant(s); "
        f"last rotation {_when(report.last_rotation_at)}; rotation {due}"
    )


@keys_app.command("rotate")
def rotate(
    if_due: Annotated[
        bool, typer.Option("--if-due", help="Rotate only when the keys are older than due.")
    ] = False,
    batch_size: Annotated[
        int | None, typer.Option(help="Data keys re-wrapped per batch.", min=1)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """New key version, a new data key per tenant, every data key re-wrapped; audited."""
    from agent_platform.audit import AuditLogError
    from agent_platform.security.crypto import EncryptionError, rotate_keys
    from agent_platform.settings import get_settings

    settings = get_settings()
    if not settings.encryption.enabled:
        _fail(ValueError("encryption at rest is off; nothing to rotate"))
    actor = {"username": getpass.getuser(), "via": "cli"}
    try:
        report = rotate_keys(settings, actor=actor, force=not if_due, batch_size=batch_size)
    except (EncryptionError, AuditLogError) as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    elif not report.rotated:
        typer.echo(f"not rotated: {report.reason} (key-encryption key v{report.kek_version})")
    else:
        retired = ", ".join(f"v{v}" for v in report.retired_kek_versions) or "none"
        typer.echo(
            f"rotated: key-encryption key v{report.previous_kek_version} -> v{report.kek_version}"
            f" ({report.reason}); {report.new_data_keys} new data key(s); {report.rewrapped} "
            f"re-wrapped in {report.batches} batch(es); retired {retired}"
        )
