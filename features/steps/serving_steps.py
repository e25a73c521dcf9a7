"""Steps of an end user calling the platform over HTTP: a real `agent-platform serve` process on a
free loopback port, stopped after the scenario."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from behave import given, then, when
from behave.runner import Context
from cli import agent_platform, succeeded

REPO = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 60 s: a server started by a scenario never outlives it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@given("the platform is serving on a loopback port")
def serve(context: Context) -> None:
    start_server(context, {})


def start_server(context: Context, settings: dict[str, str]) -> None:
    """`agent-platform serve` on a free port with the scenario's home and `settings` (env)."""
    port = free_port()
    log = context.workdir / "serve.log"
    handle = log.open("wb")
    env = {
        **os.environ,
        **settings,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_platform.cli.main", "serve", "--port", str(port)],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )

    def stop() -> None:
        stop_process(process)
        handle.close()

    context.cleanups.append(stop)
    context.url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited:\n{log.read_text()}"
        try:
            if httpx.get(f"{context.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the server was not ready within 180 s:\n{log.read_text()}")


@when('end user "{user}" asks agent "{agent}" of tenant "{tenant}" over HTTP "{question}"')
def ask_over_http(context: Context, user: str, agent: str, tenant: str, question: str) -> None:
    context.response = post_run(context, agent, tenant, {"input": question, "user": user}, {})


@when(
    'service account "{account}" asks agent "{agent}" of tenant "{tenant}" over HTTP '
    '"{question}" for end user "{user}"'
)
def ask_with_key(
    context: Context, account: str, agent: str, tenant: str, question: str, user: str
) -> None:
    headers = {"Authorization": f"Bearer {context.api_keys[account]}"}
    context.response = post_run(context, agent, tenant, {"input": question, "user": user}, headers)


def post_run(
    context: Context, agent: str, tenant: str, body: dict[str, str], headers: dict[str, str]
) -> httpx.Response:
    return httpx.post(
        f"{context.url}/v1/agents/{agent}/runs",
        json=body,
        headers={"X-Tenant": tenant, **headers},
        timeout=120,
    )


@when(
    'the operator creates an API key for service account "{account}" with role "{role}" on '
    'tenant "{tenant}"'
)
def create_key(context: Context, account: str, role: str, tenant: str) -> None:
    result = succeeded(
        agent_platform(
            "--as", "ops", "auth", "create-key", account, "--role", role, "--tenant", tenant
        )
    )
    key = result.stdout.strip()
    assert key.startswith("ap_") and "cannot be shown again" in result.stderr, result.output
    context.api_keys = {**getattr(context, "api_keys", {}), account: key}


@then("the reply asks for a bearer credential and reveals nothing else")
def challenged(context: Context) -> None:
    response = context.response
    assert response.headers["www-authenticate"].startswith("Bearer"), response.headers
    assert "answer" not in response.json() and "shipping" not in response.text, response.text


@then('the reply is 200 with an answer saying "{text}" that cites "{source}"')
def answered(context: Context, text: str, source: str) -> None:
    response = context.response
    assert response.status_code == 200, response.text
    run = response.json()
    assert text in run["answer"], run
    assert run["citations"] and run["citations"][0]["source"].endswith(source), run
    assert run["trace_id"] == response.headers["x-trace-id"]


@then('the reply is a {status:d} problem whose detail names "{needle}"')
def problem(context: Context, status: int, needle: str) -> None:
    response = context.response
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM, response.headers
    body = response.json()
    assert body["status"] == status and body["title"] and needle in body["detail"], body
    assert "Traceback" not in response.text and "/tmp" not in response.text
