"""The native routes, sessions, the agent view and the operational probes, over the wire."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from agent_platform.runtime.response import AgentResponse

README = Path(__file__).resolve().parents[2] / "README.md"


def test_native_run_returns_the_run_json_object(client):
    response = client.post(
        "/v1/agents/grounded-qa/runs",
        json={"input": "How fast is express shipping?", "user": "native"},
    )
    assert response.status_code == 200, response.text
    run = AgentResponse.model_validate(response.json())  # the object `run --json` prints
    assert "next business day" in run.answer
    assert run.citations[0].source.endswith("shipping.md")
    assert run.trace_id == response.headers["x-trace-id"]
    assert response.headers["x-agent-version"] == "default"


def test_a_session_lists_its_versions_and_rolls_back(client):
    first = client.post(
        "/v1/agents/grounded-qa/runs",
        json={"input": "How long do refunds take?", "user": "sessions"},
    ).json()
    session = first["session_id"]
    client.post(
        "/v1/agents/grounded-qa/runs",
        json={"input": "And shipping?", "user": "sessions", "session_id": session},
    ).raise_for_status()
    view = client.get(f"/v1/sessions/{session}", params={"user": "sessions"}).json()
    assert view["current_version"] == 2
    assert [v["turn_count"] for v in view["versions"]] == [2, 4]
    rolled = client.post(
        f"/v1/sessions/{session}/rollback", json={"version": 1, "user": "sessions"}
    )
    assert rolled.status_code == 200, rolled.text
    assert rolled.json() == {
        "session_id": session,
        "version": 3,
        "restored_from": 1,
        "turn_count": 2,
    }
    missing = client.post(
        f"/v1/sessions/{session}/rollback", json={"version": 9, "user": "sessions"}
    )
    assert missing.status_code == 404 and "no version 9" in missing.json()["detail"]
    other_user = client.get(f"/v1/sessions/{session}", params={"user": "someone-else"})
    assert other_user.status_code == 404


def test_agent_view_before_any_promotion_is_the_default_configuration(client):
    view = client.get("/v1/agents/grounded-qa").json()
    assert view["serving_version"] == "default"
    assert view["config"]["route"] == "default"
    assert view["prompts"]["system"] == {
        "name": "grounded_qa_system",
        "alias": "production",
        "version": None,
    }


def test_probes_and_metrics(client):
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() | {"reasons": []} == {
        "status": "ok",
        "reasons": [],
        "agent": "grounded-qa",
        "agent_version": "default",
    }
    client.post("/v1/agents/grounded-qa/runs", json={"input": "Refunds?", "user": "metrics"})
    text = client.get("/metrics").text
    assert re.search(
        r'agent_platform_http_request_duration_seconds_count\{agent_version="default",'
        r'method="POST",route="/v1/agents/\{agent\}/runs",status="200"\} [1-9]',
        text,
    ), text[:2000]
    assert "agent_platform_http_requests_in_flight 1.0" in text  # the scrape itself
    assert 'agent="grounded-qa",agent_version="default"' in text  # the runtime's own metrics


def test_the_readme_curl_example_works(gateway):
    block = re.search(r"```bash\n(curl [^`]*?/v1/chat/completions.*?)```", README.read_text(), re.S)
    assert block, "README's Serving section has no curl example"
    command = block.group(1).replace("http://127.0.0.1:8080", gateway.url)
    command = command.replace("X-Tenant: sample", "X-Tenant: handbook")  # the test's tenant
    result = subprocess.run(
        shlex.split(command.replace("\\\n", " ")), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert '"object":"chat.completion"' in result.stdout
    assert '"agent_version":"default"' in result.stdout
