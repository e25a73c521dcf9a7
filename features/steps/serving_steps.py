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

REPO = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@given("the platform is serving on a loopback port")
def serve(context: Context) -> None:
    port = free_port()
    log = context.workdir / "serve.log"
    handle = log.open("wb")
    env = {
        **os.environ,
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
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
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
    context.response = httpx.post(
        f"{context.url}/v1/agents/{agent}/runs",
        json={"input": question, "user": user},
        headers={"X-Tenant": tenant},
        timeout=120,
    )


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
