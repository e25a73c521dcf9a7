"""`agent-platform auth`: service-account API keys, sign-in sessions, the policy's unit tests,
and the identity operator commands run as (`authorize_cli`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from agent_platform.security.authn import api_key_store
from agent_platform.security.authorize import authorize_operator_action, local_policy_engine
from agent_platform.security.errors import SecurityError
from agent_platform.security.identity import Identity
from agent_platform.security.login import DeviceCode, LoginError, TokenFile, device_login
from agent_platform.security.operator import operator_identity
from agent_platform.security.policy import Decision
from agent_platform.security.sessions import open_session_tracker
from agent_platform.settings import get_settings

auth_app = typer.Typer(
    help="Identity and access: API keys, sessions, policy.", no_args_is_help=True
)


def authorize_cli(
    action: str, resource: str | dict[str, Any] | None = None, *, tenant: str | None = None
) -> tuple[Identity, Decision]:
    """The operator's identity and the policy's grant for `action`, or `error: ...` and exit 1.
    The decision is in the audit log either way."""
    settings = get_settings()
    try:
        identity = operator_identity(settings)
        decision = authorize_operator_action(
            identity, action, resource, tenant=tenant, settings=settings
        )
    except SecurityError as exc:
        reason = getattr(exc, "reason", None)
        typer.echo(f"error: {exc}" + (f" ({reason})" if reason else ""), err=True)
        raise typer.Exit(1) from exc
    return identity, decision


def audit_done(identity: Identity, kind: str, action: str, resource: str, **details: Any) -> None:
    """Record what an operator command did (after the policy's decision was recorded)."""
    from agent_platform.audit import open_audit_log

    log = open_audit_log(get_settings())
    try:
        log.record(
            kind, actor=identity.as_record(), action=action, outcome="recorded",
            resource=resource, **details,
        )  # fmt: skip
    finally:
        log.close()


@auth_app.command("whoami")
def whoami() -> None:
    """The identity operator commands run as (AGENT_PLATFORM_TOKEN, --as, or `login`)."""
    try:
        identity = operator_identity(get_settings())
    except SecurityError as exc:
        reason = getattr(exc, "reason", None)
        typer.echo(f"error: {exc}" + (f" ({reason})" if reason else ""), err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(identity.as_record() | {"tenants": sorted(identity.tenants)}))


@auth_app.command("create-key")
def create_key(
    name: Annotated[str, typer.Argument(help="The service account.")],
    role: Annotated[list[str], typer.Option("--role", help="A role (repeatable).")],
    tenant: Annotated[list[str] | None, typer.Option("--tenant", help="A tenant.")] = None,
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    authorize_cli("keys.create", f"service:{name}")
    key, record = api_key_store(get_settings()).create(name, roles=role, tenants=tenant or [])
    typer.echo(key)
    typer.echo(
        f"key {record.key_id} for {name} (roles {', '.join(record.roles)}); store it now, it "
        "cannot be shown again",
        err=True,
    )


@auth_app.command("list-keys")
def list_keys() -> None:
    """API keys without their secrets."""
    for r in api_key_store(get_settings()).list():
        state = "revoked" if r.revoked else "active"
        typer.echo(f"{r.key_id}  {r.name}  roles={','.join(r.roles)}  {state}  {r.created_at}")


@auth_app.command("revoke-key")
def revoke_key(key_id: str) -> None:
    """Revoke an API key by its id."""
    authorize_cli("keys.revoke", f"apikey:{key_id}")
    if not api_key_store(get_settings()).revoke(key_id):
        typer.echo(f"error: key_id: no API key {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@auth_app.command("sessions")
def sessions(subject: str) -> None:
    """A user's sign-in sessions (by the token's `sub`)."""
    for s in open_session_tracker(get_settings()).sessions(subject):
        typer.echo(f"{s.sid}  started={s.started:.0f}  last_seen={s.last_seen:.0f}"
                   f"  {'revoked' if s.revoked else 'active'}")  # fmt: skip


@auth_app.command("revoke-session")
def revoke_session(
    subject: str,
    sid: Annotated[str | None, typer.Option("--sid", help="One session (default: all).")] = None,
) -> None:
    """Revoke one or all sign-in sessions of a user."""
    authorize_cli("sessions.revoke", f"user:{subject}")
    count = open_session_tracker(get_settings()).revoke(subject, sid)
    typer.echo(f"revoked {count} session(s) of {subject}")


@auth_app.command("policy-test")
def policy_test() -> None:
    """Run the policy bundle's Rego unit tests (`test_` rules) on the embedded evaluator."""
    engine = local_policy_engine(get_settings())
    if engine.error:
        typer.echo(f"error: {engine.error}", err=True)
        raise typer.Exit(1)
    results = engine.run_tests()
    for name, passed in results.items():
        typer.echo(f"{'PASS' if passed else 'FAIL'}  {name}")
    failed = [n for n, ok in results.items() if not ok]
    typer.echo(f"{len(results) - len(failed)}/{len(results)} passed, bundle {engine.digest}")
    if failed or not results:
        raise typer.Exit(1)


def login() -> None:
    """Sign in at the issuer (device authorization grant) and keep the token for later commands.

    Open the URL shown, enter the code and sign in; the token is verified, then stored 0600 under
    the home (`<home>/auth/token.json`) for operator commands run without `--as`."""
    settings = get_settings()

    def show(code: DeviceCode) -> None:
        where = code.verification_uri_complete or code.verification_uri
        typer.echo(f"To sign in, open {where} and enter the code {code.user_code}", err=True)

    try:
        token = device_login(settings, show)
        from agent_platform.security.authn import Authenticator

        identity = Authenticator(settings).authenticate(f"Bearer {token}")
    except LoginError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except SecurityError as exc:
        reason = getattr(exc, "reason", None)
        typer.echo(f"error: the issued token was refused: {reason or exc}", err=True)
        raise typer.Exit(1) from exc
    TokenFile.under(settings.home_dir).save(token, str(settings.auth.issuer))
    roles = ", ".join(sorted(identity.roles)) or "no roles"
    typer.echo(f"signed in as {identity.display_name} ({identity.subject}; {roles})")


def logout() -> None:
    """Forget the token `agent-platform login` stored."""
    removed = TokenFile.under(get_settings().home_dir).clear()
    typer.echo("signed out" if removed else "not signed in")
