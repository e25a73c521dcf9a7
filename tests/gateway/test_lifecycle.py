"""A second, short-lived server over a copy of the home: a promotion is picked up without a
restart, and SIGTERM under load loses no accepted request."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time

import httpx
import pytest

QUESTION = "How long do refunds take to be paid back?"


@pytest.fixture
def lifecycle_server(gateway_home, tmp_path, launch):
    home = tmp_path / "home"
    shutil.copytree(gateway_home, home)
    for stale in (home / "runtime" / "requests.jsonl", home / "telemetry" / "traces.jsonl"):
        stale.unlink(missing_ok=True)
    server = launch(
        home,
        tmp_path / "gateway.log",
        AGENT_PLATFORM_SERVING_CHAMPION_TTL_S="0.5",
        AGENT_PLATFORM_SERVING_GRACEFUL_SHUTDOWN_S="30",
    )
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


def _promote_a_version(home) -> None:
    from agent_platform.model_registry.registry import AgentModelRegistry
    from agent_platform.runtime.agent_config import AgentConfig
    from agent_platform.settings import Settings

    registry = AgentModelRegistry.from_settings(Settings(home=home))
    version, _ = registry.register(
        AgentConfig(name="grounded-qa"), {"index_snapshot_id": "snap-test"}
    )
    registry.record_evaluation(
        "grounded-qa",
        version.version,
        run_id="eval-run",
        metrics={"accuracy": 0.9},
        gates_passed=True,
        dataset_version="d1",
    )
    registry.promote("grounded-qa", version.version, by="test")


def _ask(url: str, user: str) -> httpx.Response:
    with httpx.Client(base_url=url, headers={"X-Tenant": "handbook"}, timeout=60) as client:
        return client.post(
            "/v1/chat/completions",
            json={
                "model": "grounded-qa",
                "user": user,
                "messages": [{"role": "user", "content": QUESTION}],
            },
        )


def test_promotion_without_restart_then_sigterm_under_load_loses_nothing(lifecycle_server):
    server = lifecycle_server
    assert _ask(server.url, "before").headers["x-agent-version"] == "default"
    _promote_a_version(server.home)
    deadline = time.monotonic() + 30
    while _ask(server.url, "after").headers["x-agent-version"] != "1":
        assert time.monotonic() < deadline, "the promotion was not picked up within 30 s"
        time.sleep(0.3)
    view = httpx.get(f"{server.url}/v1/agents/grounded-qa", timeout=30).json()
    assert view["serving_version"] == "1" and view["aliases"] == {"champion": 1}
    assert view["evaluated"] and view["gates_passed"] and view["metrics"] == {"accuracy": 0.9}
    assert view["index_snapshot"] == "snap-test"

    # SIGTERM while 8 clients keep sending, each request on a fresh connection
    results: list[tuple[str, float, object]] = []
    stop, lock = threading.Event(), threading.Lock()

    def load(worker: int) -> None:
        for n in range(10_000):
            user = f"load-{worker}-{n}"
            try:
                outcome: object = _ask(server.url, user)
            except httpx.TransportError as exc:
                outcome = exc
            with lock:
                results.append((user, time.monotonic(), outcome))
            if stop.is_set() or isinstance(outcome, httpx.ConnectError):
                return

    threads = [threading.Thread(target=load, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    while sum(isinstance(r[2], httpx.Response) for r in results) < 16:
        time.sleep(0.05)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal once shut down, so the exit status says SIGTERM
    assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    answered = {u: o for u, _, o in results if isinstance(o, httpx.Response)}
    assert answered and all(r.status_code == 200 for r in answered.values()), {
        u: (r.status_code, r.text[:200]) for u, r in answered.items() if r.status_code != 200
    }
    traces = {u: r.json()["agent_platform"]["trace_id"] for u, r in answered.items()}
    assert all(traces[u] == r.headers["x-trace-id"] for u, r in answered.items())
    finished_after_signal = [u for u, t, o in results if o in answered.values() and t > signalled]
    assert finished_after_signal, "no request was in flight at SIGTERM"

    log = server.home / "runtime" / "requests.jsonl"
    recorded = {
        r["user"]: r
        for r in map(json.loads, log.read_text().splitlines())
        if str(r.get("user", "")).startswith("load-")
    }
    assert set(recorded) == set(answered), "a request was recorded without an answer or vice versa"
    assert all(recorded[u]["trace_id"] == traces[u] for u in answered)
    spans = (server.home / "telemetry" / "traces.jsonl").read_text()
    assert all(trace in spans for trace in traces.values()), "spans were not flushed at exit"
    assert "Application shutdown complete" in server.log.read_text()
