"""Who runs an operator command, first match wins: a verified token (`AGENT_PLATFORM_TOKEN`); in
the local profile a declared development identity (`--as NAME`), recorded as unverified; the
token `agent-platform login` stored under the home; in the local profile the OS user, unverified.
Production refuses anything but a verified token."""

from __future__ import annotations

import getpass
import os

from agent_platform.security.authn import Authenticator
from agent_platform.security.errors import AuthenticationError
from agent_platform.security.identity import Identity
from agent_platform.security.login import TokenFile
from agent_platform.settings import Settings

TOKEN_ENV = "AGENT_PLATFORM_TOKEN"  # nosec B105  # the name of an environment variable, not a token
AS_ENV = "AGENT_PLATFORM_AS"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def operator_identity(settings: Settings, *, as_name: str | None = None) -> Identity:
    """The identity of the person (or pipeline) running a CLI command."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    as_name = as_name or os.environ.get(AS_ENV) or None
    if token:
        return Authenticator(settings).authenticate(f"Bearer {token}")
    if as_name and settings.profile != "production":
        return Identity.development(as_name)
    stored = None if as_name else TokenFile.under(settings.home_dir).load(settings.auth.issuer)
    if stored:
        try:
            return Authenticator(settings).authenticate(f"Bearer {stored}")
        except AuthenticationError as exc:
            raise AuthenticationError(
                f"the signed-in token is no longer valid ({exc.reason}); run `agent-platform login`"
            ) from exc
    if settings.profile == "production":
        which = "--as is a local development identity" if as_name else "no identity given"
        raise AuthenticationError(
            f"production needs {TOKEN_ENV} or `agent-platform login` ({which})"
        )
    return Identity.development(_os_user())
