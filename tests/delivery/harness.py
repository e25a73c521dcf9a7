"""A blue/green rollout under load, shared by tests/delivery and benchmarks/rollout.py: a home
with an indexed tenant and three registered versions of `grounded-qa`, an OpenAI-compatible model
server that fails every n-th call (green's model), a real gateway process, and steady load.

Versions: blue (champion; the embedded extractive model), `flaky` (the hosted model served by
`FlakyModel`) and `healthy` (extractive with another retrieval depth). They are registered with
their real lineage; their evaluation verdict is recorded directly (passed), since running the
evaluation job is not what these measure.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from agent_platform.settings import Settings
from benchmarks.serve import LIMITS
from tests.gateway.conftest import start_gateway as launch_gateway

REPO = Path(__file__).resolve().parents[2]
AGENT, TENANT = "grounded-qa", "handbook"
CORPUS = {
    "refunds.md": "# Refunds\n\nCustomers can request a refund within 30 days of delivery. "
    "Refunds are paid back to the original payment method within 5 business days.",
    "support.txt": "The support desk is open Monday to Friday from 8 am to 6 pm Central "
    "European Time. Urgent incidents can be reported by phone at any time.",
}
QUESTION = "How long do refunds take to be paid back?"
APPROVERS = {"release_manager": "rita", "operations_lead": "omar", "security_team_lead": "sofia"}
UNLIMITED = LIMITS  # no rate limit gets in the way of a steady load


class FlakyModel:
    """/v1/chat/completions answering 500 on every `fail_every`-th call (None: never)."""

    def __init__(self, fail_every: int | None = 20) -> None:
        self.fail_every = fail_every
        self.calls = self.failures = 0
        self.first_failure_at: float | None = None
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with owner._lock:
                    owner.calls += 1
                    fail = bool(owner.fail_every) and owner.calls % owner.fail_every == 0
                    if fail:
                        owner.failures += 1
                        owner.first_failure_at = owner.first_failure_at or time.time()
                payload = (
                    {"error": {"message": "injected failure"}}
                    if fail
                    else {
                        "id": "chatcmpl-flaky",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": "flaky",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "Within 5 days."},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
                    }
                )
                data = json.dumps(payload).encode()
                try:
                    self.send_response(500 if fail else 200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def gateway_env(model_url: str) -> dict[str, str]:
    """The gateway's catalogue: the embedded models plus `flaky` (no retries, so an injected
    failure reaches the caller as the 502 it would be)."""
    from agent_platform.runtime.catalogue import default_models

    flaky = {
        "name": "flaky",
        "provider": "openai",
        "model": "fake-gpt",
        "base_url": model_url,
        "api_key_env": "FAKE_OPENAI_API_KEY",
        "context_window": 8192,
        "capabilities": ["chat", "grounded_qa"],
        "latency_prior_ms": 50.0,
        "params": {"max_retries": 0, "timeout": 5},
    }
    models = [m.model_dump(mode="json") for m in default_models()] + [flaky]
    return {
        "AGENT_PLATFORM_RUNTIME_MODELS": json.dumps(models),
        "AGENT_PLATFORM_RUNTIME_RETRY__ATTEMPTS": "1",
        "AGENT_PLATFORM_RUNTIME_BREAKER__MIN_REQUESTS": "1000000",  # the rollout decides
        "AGENT_PLATFORM_SERVING_CHAMPION_TTL_S": "1",
        "FAKE_OPENAI_API_KEY": "sk-test",
        **UNLIMITED,
    }


def prepare_home(home: Path) -> dict[str, int]:
    """Index the tenant, publish the prompts, register blue/flaky/healthy (blue promoted)."""
    from agent_platform.model_registry import AgentModelRegistry, build_lineage
    from agent_platform.runtime.agent_config import AgentConfig, RetrievalConfig
    from tests.homes import index_tenant, promote_shipped_prompts

    corpus = home.parent / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    for name, text in CORPUS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    settings = Settings(home=home)
    started = time.perf_counter()
    index_tenant(settings, TENANT, corpus)
    print(f"indexed in {time.perf_counter() - started:.1f} s")
    promote_shipped_prompts(settings)
    print(f"prompts in {time.perf_counter() - started:.1f} s")
    registry = AgentModelRegistry.from_settings(settings)
    configs = {
        "blue": AgentConfig(name=AGENT, models=["extractive"]),
        "flaky": AgentConfig(name=AGENT, models=["flaky"]),
        "healthy": AgentConfig(name=AGENT, models=["extractive"], retrieval=RetrievalConfig(k=4)),
    }
    versions = {}
    for candidate, config in configs.items():
        lineage = build_lineage(settings, config, tenant=TENANT, candidate=candidate)
        version, _ = registry.register(config, lineage)
        registry.record_evaluation(
            AGENT,
            version.version,
            run_id=f"rollout-{candidate}",
            metrics={"accuracy": 1.0},
            gates_passed=True,
            dataset_version="rollout-harness",
        )
        versions[candidate] = version.version
    registry.promote(AGENT, versions["blue"], by="harness", reason="the serving version")
    print(f"versions in {time.perf_counter() - started:.1f} s")
    return versions


def start_gateway(home: Path, log: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """`agent-platform serve` on a free loopback port, once /readyz says ready (the gateway
    suite's launcher)."""
    gateway = launch_gateway(home, log, **env)
    return gateway.process, gateway.url


@dataclass
class Answer:
    at: float
    status: int  # 0: no HTTP answer (a dropped request)
    version: str
    caller: tuple[str, str]
    latency_s: float = 0.0


@dataclass
class Load:
    """`threads` callers cycling over `callers` (user, session) pairs until stopped."""

    url: str
    threads: int = 4
    callers: int = 200
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.threads)
        ]

    def pairs(self) -> list[tuple[str, str]]:
        return [(f"user{i}", f"session{i}") for i in range(self.callers)]

    def _run(self, index: int) -> None:
        mine = self.pairs()[index :: self.threads]
        with httpx.Client(base_url=self.url, headers={"X-Tenant": TENANT}, timeout=30) as c:
            turn = 0
            while not self._stop.is_set():
                user, session = mine[turn % len(mine)]
                turn += 1
                body = {
                    "model": AGENT,
                    "messages": [{"role": "user", "content": QUESTION}],
                    "user": user,
                    "metadata": {"session_id": session},
                }
                sent = time.perf_counter()
                try:
                    r = c.post("/v1/chat/completions", json=body)
                    version = r.headers.get("x-agent-version", "")
                    answer = Answer(time.time(), r.status_code, version, (user, session))
                except httpx.HTTPError:
                    answer = Answer(time.time(), 0, "", (user, session))
                answer.latency_s = time.perf_counter() - sent
                with self._lock:
                    self.answers.append(answer)

    def __enter__(self) -> Load:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)

    def since(self, at: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.at >= at]


def approve(controller, version: int) -> None:
    """The three deployment approvals, each by another (development) identity."""
    for role, name in APPROVERS.items():
        actor = {"subject": f"dev:{name}", "username": name, "verified": False}
        controller.approve(version, role=role, actor=actor, agent=AGENT)


def run_until(controller, stages: set[str], timeout_s: float, every_s: float = 0.5):
    """Tick the controller until the rollout reaches one of `stages` (or the time runs out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        outcome = controller.tick(AGENT)
        if outcome is None or str(outcome.rollout.stage) in stages:
            return outcome
        time.sleep(every_s)
    return controller.tick(AGENT)
