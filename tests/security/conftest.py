"""A real OpenID provider (deploy/oidc: panva/oidc-provider on Node) on a loopback port for the
session, and gateway processes that trust it.

Happy-path tokens come from the provider's client credentials grant; tokens for attacks are
minted here (tests/security/attacks.py). The Makefile installs the provider (`make oidc`); a
missing install skips locally and fails under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from joserfc.jwk import RSAKey

from tests.gateway.conftest import (  # noqa: F401 - the shared indexed home fixture
    TENANT,
    Gateway,
    ask,
    free_port,
    gateway_home,
    start_gateway,
)

REPO = Path(__file__).resolve().parents[2]
OIDC_DIR = REPO / "deploy" / "oidc"
AUDIENCE = "agent-platform"
SECRET = "s3cret-"  # + client id
# Keycloak-shaped claims per client (see deploy/oidc/provider.mjs).
CLIENTS = [
    {"client_id": "alice", "realm_roles": ["user"], "groups": [f"/tenants/{TENANT}"],
     "sid": "alice-session"},
    {"client_id": "vera", "realm_roles": ["viewer"], "groups": [f"/tenants/{TENANT}"],
     "sid": "vera-session"},
    {"client_id": "mallory", "realm_roles": ["user"], "tenants": ["other"]},
    {"client_id": "olga", "client_roles": ["operator"], "tenants": [TENANT]},
    {"client_id": "pat", "realm_roles": ["user"], "tenants": [TENANT], "alg": "PS256"},
    {"client_id": "backend", "username": "service-account-backend", "realm_roles": ["user"],
     "tenants": [TENANT], "alg": "ES256"},
    {"client_id": "carol", "realm_roles": ["user"], "tenants": [TENANT], "sid": "per-token"},
    {"client_id": "dave", "realm_roles": ["user"], "tenants": [TENANT], "sid": "per-token"},
]  # fmt: skip
# People who sign in with the device authorization grant (`agent-platform login`).
USERS = [
    {"username": "sam", "realm_roles": ["security_architect"], "tenants": [TENANT]},
]
CLI_CLIENT = "agent-platform-cli"


MINTER_KID = "test-minter"


@dataclass
class OidcProvider:
    url: str
    process: subprocess.Popen
    minter: RSAKey  # the tests' key, published in the provider's JWKS (for claim attacks)

    def token(self, client: str) -> str:
        response = httpx.post(
            f"{self.url}/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client,
                "client_secret": SECRET + client,
            },
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def control(self, action: str, **params: str) -> dict:
        response = httpx.post(f"{self.url}/__test/{action}", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def jwks(self) -> dict:
        return httpx.get(f"{self.url}/jwks", timeout=10).json()


def _provider_installed() -> bool:
    return (OIDC_DIR / "node_modules" / "oidc-provider").is_dir() and bool(shutil.which("node"))


@pytest.fixture(scope="session")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    if not _provider_installed():
        message = "the OIDC provider is not installed: run `make oidc` (npm ci in deploy/oidc)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("oidc")
    clients = [{**c, "client_secret": SECRET + c["client_id"]} for c in CLIENTS]
    config = root / "clients.json"
    config.write_text(
        json.dumps({"audience": AUDIENCE, "resource": "urn:agent-platform:gateway",
                    "clients": clients, "users": USERS,
                    "device_clients": [{"client_id": CLI_CLIENT}]}),
        encoding="utf-8",
    )  # fmt: skip
    minter = RSAKey.generate_key(2048, parameters={"kid": MINTER_KID, "alg": "RS256", "use": "sig"})
    extra = root / "minter.json"
    extra.write_text(json.dumps(minter.as_dict(private=True)), encoding="utf-8")
    port = free_port()
    log = (root / "provider.log").open("wb")
    process = subprocess.Popen(
        [
            "node",
            "provider.mjs",
            "--port",
            str(port),
            "--clients",
            str(config),
            "--extra-key",
            str(extra),
        ],
        cwd=OIDC_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    provider = OidcProvider(f"http://127.0.0.1:{port}", process, minter)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((root / "provider.log").read_text())
        try:
            if httpx.get(f"{provider.url}/jwks", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    yield provider
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)


def auth_env(oidc: OidcProvider, **extra: str) -> dict[str, str]:
    return {
        "AGENT_PLATFORM_AUTH__ISSUER": oidc.url,
        "AGENT_PLATFORM_AUTH__AUDIENCE": AUDIENCE,
        **extra,
    }


@pytest.fixture(scope="session")
def secure_gateway(
    gateway_home: Path,  # noqa: F811
    oidc: OidcProvider,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    """A gateway that requires sign-in; unknown kids refetch the JWKS at most once a second."""
    server = start_gateway(
        gateway_home,
        tmp_path_factory.mktemp("secure") / "gateway.log",
        **auth_env(
            oidc,
            AGENT_PLATFORM_AUTH__REQUIRED="true",
            AGENT_PLATFORM_AUTH__JWKS_REFETCH_INTERVAL_S="1",
        ),
    )
    yield server
    server.stop()


@pytest.fixture
def audit_tail(gateway_home: Path):  # noqa: F811
    """`audit_tail(n)`: the newest audit records of the gateways' home, as dicts."""
    from agent_platform.audit import open_audit_log
    from agent_platform.settings import Settings

    log = open_audit_log(Settings(home=gateway_home))

    def tail(limit: int = 20) -> list[dict]:
        return [r.as_dict() for r in log.tail(limit)]

    return tail
