"""`agent-platform login`: a person signs in at the issuer, and later CLI commands act as them.

The device authorization grant (RFC 8628), because a terminal has no browser to redirect: the
CLI shows a short code and a URL, the person signs in there (on any device, with the provider's
own login, MFA and consent pages), and the CLI polls the token endpoint until the issuer answers.
The access token is verified like any bearer token before it is kept, in a 0600 file under the
platform's home (`<home>/auth/token.json`); operator commands without `--as` or
AGENT_PLATFORM_TOKEN read it, and refuse it once expired (sign in again).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agent_platform.security.errors import AuthenticationError
from agent_platform.security.private_files import FILE_MODE, private_dir
from agent_platform.settings import Settings

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class LoginError(RuntimeError):
    """Sign-in did not complete: the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """What the person needs to sign in (the code and where to enter it)."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    interval_s: float
    expires_in_s: float


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise LoginError(f"{what}: the issuer answered HTTP {response.status_code}, not JSON")
    return body


def discover(issuer: str, *, timeout_s: float) -> dict[str, Any]:
    """The issuer's OpenID configuration; it must offer the device authorization grant."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise LoginError(f"issuer {issuer}: unreachable ({type(exc).__name__})") from exc
    config = _json(response, f"issuer {issuer}")
    if "device_authorization_endpoint" not in config or "token_endpoint" not in config:
        raise LoginError(f"issuer {issuer}: does not offer the device authorization grant")
    return config


def start(config: dict[str, Any], client_id: str, *, timeout_s: float) -> DeviceCode:
    """Ask the issuer for a device code and the user code to show."""
    try:
        response = httpx.post(
            config["device_authorization_endpoint"],
            data={"client_id": client_id, "scope": "openid"},
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise LoginError(f"device authorization: unreachable ({type(exc).__name__})") from exc
    body = _json(response, "device authorization")
    if response.status_code != 200 or "device_code" not in body:
        raise LoginError(f"device authorization refused: {body.get('error', 'unknown error')}")
    return DeviceCode(
        device_code=str(body["device_code"]),
        user_code=str(body["user_code"]),
        verification_uri=str(body["verification_uri"]),
        verification_uri_complete=body.get("verification_uri_complete"),
        interval_s=float(body.get("interval", 5)),
        expires_in_s=float(body.get("expires_in", 600)),
    )


def poll(
    config: dict[str, Any],
    client_id: str,
    code: DeviceCode,
    *,
    timeout_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Poll the token endpoint at the issuer's pace until it grants (the access token),
    refuses or the code expires (LoginError)."""
    deadline = time.monotonic() + code.expires_in_s
    interval = code.interval_s
    while time.monotonic() < deadline:
        sleep(interval)
        try:
            response = httpx.post(
                config["token_endpoint"],
                data={"grant_type": DEVICE_GRANT, "device_code": code.device_code,
                      "client_id": client_id},
                timeout=timeout_s,
            )  # fmt: skip
        except httpx.HTTPError:
            continue  # a transient outage: keep polling until the code expires
        body = _json(response, "token endpoint")
        if response.status_code == 200 and body.get("access_token"):
            return str(body["access_token"])
        error = body.get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5
            continue
        reasons = {"access_denied": "the sign-in was refused", "expired_token": "the code expired"}  # nosec B105  # OAuth device-flow error codes, not passwords
        raise LoginError(f"sign-in failed: {reasons.get(str(error), error or 'unknown error')}")
    raise LoginError("sign-in failed: the code expired before the sign-in completed")


def device_login(settings: Settings, show: Callable[[DeviceCode], None]) -> str:
    """Sign in at the configured issuer; returns the access token (not yet verified)."""
    auth = settings.auth
    if not auth.issuer:
        raise LoginError("no issuer: set AGENT_PLATFORM_AUTH__ISSUER (and __AUDIENCE)")
    config = discover(auth.issuer, timeout_s=auth.http_timeout_s)
    code = start(config, auth.cli_client_id, timeout_s=auth.http_timeout_s)
    show(code)
    return poll(config, auth.cli_client_id, code, timeout_s=auth.http_timeout_s)


class TokenFile:
    """The signed-in person's token, 0600 under the home; refused if others can read it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def under(cls, home_dir: Path) -> TokenFile:
        return cls(Path(home_dir) / "auth" / "token.json")

    def save(self, token: str, issuer: str) -> None:
        private_dir(self.path.parent)
        temporary = self.path.with_suffix(".tmp")
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"issuer": issuer, "access_token": token}, handle)
        temporary.replace(self.path)

    def load(self, issuer: str | None) -> str | None:
        """The stored token for `issuer`, or None when nobody signed in (or for another
        issuer); AuthenticationError when the file is readable by others."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        if info.st_mode & 0o077:
            raise AuthenticationError(
                f"token file {self.path} is readable by others; delete it and sign in again"
            )
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise AuthenticationError(f"token file {self.path} is unreadable") from None
        if not isinstance(stored, dict) or stored.get("issuer") != issuer:
            return None
        token = stored.get("access_token")
        return token if isinstance(token, str) and token else None

    def clear(self) -> bool:
        existed = self.path.exists()
        self.path.unlink(missing_ok=True)
        return existed
