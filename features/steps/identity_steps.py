"""Steps of a security officer whose organisation signs its users in with an OpenID provider: the
project's own provider (deploy/oidc, panva/oidc-provider on Node) on a free loopback port,
stopped after the scenario."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
from behave import given, when
from behave.runner import Context
from serving_steps import free_port, post_run, start_server

OIDC_DIR = Path(__file__).resolve().parents[2] / "deploy" / "oidc"
AUDIENCE = "agent-platform"


@given('the organisation\'s identity provider signs in user "{user}" of tenant "{tenant}"')
def identity_provider(context: Context, user: str, tenant: str) -> None:
    assert (OIDC_DIR / "node_modules" / "oidc-provider").is_dir() and shutil.which("node"), (
        "the OpenID provider is not installed: run `make oidc`"
    )
    secret = f"secret-of-{user}"
    clients = context.workdir / "clients.json"
    clients.write_text(
        json.dumps(
            {
                "audience": AUDIENCE,
                "resource": "urn:agent-platform:gateway",
                "clients": [
                    {
                        "client_id": user,
                        "client_secret": secret,
                        "realm_roles": ["user"],
                        "tenants": [tenant],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    port = free_port()
    log = (context.workdir / "oidc.log").open("wb")
    process = subprocess.Popen(
        ["node", "provider.mjs", "--port", str(port), "--clients", str(clients)],
        cwd=OIDC_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def stop() -> None:
        process.terminate()
        process.wait(timeout=10)
        log.close()

    context.cleanups.append(stop)
    context.issuer = f"http://127.0.0.1:{port}"
    context.secrets = {user: secret}
    deadline = time.monotonic() + 90  # node starts slowly on a busy 2-core machine
    while time.monotonic() < deadline:
        assert process.poll() is None, (context.workdir / "oidc.log").read_text()
        try:
            if httpx.get(f"{context.issuer}/jwks", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the OpenID provider did not answer within 90 s")


@given("the platform requires sign-in and is serving on a loopback port")
def serve_signed_in(context: Context) -> None:
    start_server(
        context,
        {
            "AGENT_PLATFORM_AUTH__REQUIRED": "true",
            "AGENT_PLATFORM_AUTH__ISSUER": context.issuer,
            "AGENT_PLATFORM_AUTH__AUDIENCE": AUDIENCE,
            # discovery and JWKS from a provider sharing a busy 2-core machine (default 5 s)
            "AGENT_PLATFORM_AUTH__HTTP_TIMEOUT_S": "30",
        },
    )


@when(
    'end user "{user}" signs in and asks agent "{agent}" of tenant "{tenant}" over HTTP '
    '"{question}"'
)
def ask_signed_in(context: Context, user: str, agent: str, tenant: str, question: str) -> None:
    grant = httpx.post(
        f"{context.issuer}/token",
        data={
            "grant_type": "client_credentials",
            "client_id": user,
            "client_secret": context.secrets[user],
        },
        timeout=30,
    )
    assert grant.status_code == 200, grant.text
    headers = {"Authorization": f"Bearer {grant.json()['access_token']}"}
    context.response = post_run(context, agent, tenant, {"input": question, "user": user}, headers)
