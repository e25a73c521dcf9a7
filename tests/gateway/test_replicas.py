"""Two gateway replicas behind HAProxy on loopback, sharing state through the machine's Redis and
PostgreSQL: a user's quota is one quota, a session continues on the other replica, and killing a
replica under load loses no accepted request's record.

Each replica runs on a copy of the session's gateway home (index, prompts, registry, keys), so
the only state the two share is what Redis and PostgreSQL hold, under a namespace of this
module's own."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from agent_platform.security.crypto.factory import open_key_ring
from agent_platform.settings import Settings
from benchmarks.replicas import (
    Proxy,
    drop_shared_state,
    haproxy_binary,
    shared_state_env,
    start_haproxy,
)
from tests.conftest import POSTGRES_URL, REDIS_URL, require_service
from tests.gateway.conftest import QUESTION, TENANT, Gateway

pytestmark = [pytest.mark.redis, pytest.mark.postgres]
QUOTA = 4  # requests per minute per user, on each replica and (through Redis) in all


@pytest.fixture(scope="module")
def replicas(gateway_home: Path, launch, tmp_path_factory) -> Iterator[dict]:
    require_service("Redis", "127.0.0.1", 6379)
    require_service("PostgreSQL", "127.0.0.1", 5432)
    if haproxy_binary() is None:
        message = "haproxy is not installed (apt-get install haproxy)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true requires it", pytrace=False)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("replicas")
    namespace = f"ap-replicas-{uuid.uuid4().hex[:10]}"
    env = {
        **shared_state_env(namespace, redis_url=REDIS_URL, postgres_url=POSTGRES_URL),
        "AGENT_PLATFORM_RUNTIME_RATE_LIMITS__USER_REQUESTS_PER_MINUTE": str(QUOTA),
    }
    # Data keys live in the home locally (PostgreSQL behind Vault in production): the tenant's
    # key exists before the copies are made, so both replicas read what the other sealed.
    open_key_ring(Settings(home=gateway_home)).current(TENANT)
    homes = []
    for name in ("a", "b"):
        home = root / name / "home"
        shutil.copytree(gateway_home, home, ignore=shutil.ignore_patterns("requests.jsonl"))
        homes.append(home)
    with ThreadPoolExecutor(2) as pool:
        started = [pool.submit(launch, home, home.parent / "gateway.log", **env) for home in homes]
        gateways: list[Gateway] = [future.result() for future in started]
    proxy: Proxy | None = None
    try:
        proxy = start_haproxy([g.url.removeprefix("http://") for g in gateways], root)
        yield {"a": gateways[0], "b": gateways[1], "proxy": proxy}
    finally:
        if proxy is not None:
            proxy.stop()
        for gateway in gateways:
            gateway.stop()
        drop_shared_state(namespace, redis_url=REDIS_URL, postgres_url=POSTGRES_URL)


def run(url: str, user: str, session: str | None = None) -> httpx.Response:
    body = {"input": QUESTION, "user": user, **({"session_id": session} if session else {})}
    return httpx.post(
        f"{url}/v1/agents/grounded-qa/runs", json=body, headers={"X-Tenant": TENANT}, timeout=60
    )


def test_a_users_quota_holds_across_replicas(replicas: dict) -> None:
    urls = [replicas["a"].url, replicas["b"].url]
    statuses = [run(urls[i % 2], "quota-user").status_code for i in range(2 * QUOTA)]
    # alone, each replica would have answered QUOTA of its own QUOTA requests
    assert statuses.count(200) == QUOTA, statuses
    assert statuses.count(429) == QUOTA, statuses


def test_a_session_continues_on_the_other_replica(replicas: dict) -> None:
    first = run(replicas["a"].url, "wanderer")
    assert first.status_code == 200, first.text
    session = first.json()["session_id"]
    second = run(replicas["b"].url, "wanderer", session)
    assert second.status_code == 200, second.text
    assert second.json()["state_version"] == 2
    view = httpx.get(
        f"{replicas['a'].url}/v1/sessions/{session}",
        params={"user": "wanderer"},
        headers={"X-Tenant": TENANT},
    ).json()
    assert [v["turn_count"] for v in view["versions"]] == [2, 4]


def test_killing_a_replica_under_load_loses_no_accepted_request(replicas: dict) -> None:
    """Runs last: it kills replica b. Every answered request's conversation is in PostgreSQL and
    its line in a replica's request log, b's answers included."""
    proxy, victim = replicas["proxy"], replicas["b"]
    results: list[tuple[int, str, dict]] = []
    lock, killed = threading.Lock(), threading.Event()

    def client(worker: int) -> None:
        for i in range(8):
            user = f"load-{worker}-{i}"
            try:
                response = run(proxy.url, user)
                # HAProxy's own 502/503 pages are HTML: only an answer carries a JSON body
                body = response.json() if response.status_code == 200 else {}
                outcome = (response.status_code, user, body)
            except httpx.TransportError:
                outcome = (0, user, {})
            with lock:
                results.append(outcome)
                if len(results) == 6 and not killed.is_set():
                    victim.stop(signal.SIGKILL)
                    killed.set()

    threads = [threading.Thread(target=client, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert killed.is_set()
    accepted = [(user, body) for status, user, body in results if status == 200]
    refused = [status for status, _, _ in results if status != 200]
    assert len(accepted) >= 12, results  # the survivor kept answering after the kill
    assert set(refused) <= {502, 503}, refused  # a request cut off is refused, never half-done

    logged: dict[str, set[str]] = {}
    for name in ("a", "b"):
        path = replicas[name].home / "runtime" / "requests.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        logged[name] = {json.loads(line)["trace_id"] for line in lines if line.strip()}
    for user, body in accepted:
        view = httpx.get(
            f"{proxy.url}/v1/sessions/{body['session_id']}",
            params={"user": user},
            headers={"X-Tenant": TENANT},
            timeout=30,
        )
        assert view.status_code == 200, (user, view.text)
        assert view.json()["current_version"] == 1
        assert body["trace_id"] in logged["a"] | logged["b"]
    # b answered some of them before it died, and their records outlived it
    assert {body["trace_id"] for _, body in accepted} & logged["b"]
