"""Fixtures of the runtime tests: isolated Postgres schemas and Redis prefixes, and a local
OpenAI-compatible HTTP server that misbehaves on demand (500s, hangs, garbage)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis

from agent_platform.runtime.catalogue import Capability, ModelSpec


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def pg_schema(postgres_url: str, unique: str) -> Iterator[str]:
    """A schema of its own for one test, dropped afterwards."""
    import psycopg

    schema = f"rt_test_{unique}"
    yield schema
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def redis_prefix(redis_url: str, unique: str) -> Iterator[str]:
    """A key prefix of its own for one test; its keys are deleted afterwards."""
    prefix = f"agent-platform-test:{unique}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


class FakeOpenAI:
    """Serves /v1/chat/completions; each request takes the next behaviour of `script`.

    Behaviours: "ok" (answers `text`), "500", "401", "hang" (sleeps `hang_s`), "garbage" (200 with a
    non-JSON body), "empty" (200, valid JSON, empty content). The last behaviour repeats.
    `peak_in_flight` is the most requests it was serving at once.
    """

    def __init__(self) -> None:
        self.script: list[str] = ["ok"]
        self.text = "Hosted answer."
        self.hang_s = 2.0
        self.requests = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with owner._lock:
                    index = owner.requests
                    owner.requests += 1
                    owner.in_flight += 1
                    owner.peak_in_flight = max(owner.peak_in_flight, owner.in_flight)
                try:
                    self._handle(body, owner.script[min(index, len(owner.script) - 1)])
                finally:
                    with owner._lock:
                        owner.in_flight -= 1

            def _handle(self, body: dict[str, object], action: str) -> None:
                if action == "hang":
                    time.sleep(owner.hang_s)
                    action = "ok"
                if action in {"500", "401"}:
                    self._send(int(action), {"error": {"message": f"fake {action}"}})
                elif action == "garbage":
                    self._raw(200, b"<html>definitely not json</html>", "text/html")
                else:
                    content = "" if action == "empty" else owner.text
                    self._send(200, _completion(str(body.get("model", "fake")), content))

            def _send(self, status: int, payload: dict[str, object]) -> None:
                self._raw(status, json.dumps(payload).encode(), "application/json")

            def _raw(self, status: int, data: bytes, kind: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _completion(model: str, content: str) -> dict[str, object]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }


def hosted(base_url: str, name: str = "hosted", **overrides: object) -> ModelSpec:
    """A hosted model served by `FakeOpenAI` at `base_url` (its key is set by `fake_openai`);
    the client neither retries nor waits long, so the router's policies are what is tested."""
    fields: dict[str, object] = {
        "name": name,
        "provider": "openai",
        "model": "fake-gpt",
        "base_url": base_url,
        "api_key_env": "FAKE_OPENAI_API_KEY",
        "input_price_per_1k": 0.5,
        "output_price_per_1k": 1.5,
        "context_window": 8192,
        "capabilities": frozenset({Capability.CHAT, Capability.GROUNDED_QA}),
        "quality_prior": 0.9,
        "latency_prior_ms": 800.0,
        "params": {"max_retries": 0, "timeout": 5},
    }
    fields.update(overrides)
    return ModelSpec(**fields)


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    monkeypatch.setenv("FAKE_OPENAI_API_KEY", "sk-test")
    server = FakeOpenAI()
    yield server
    server.close()


# --- The agent runtime: one indexed tenant and published prompts, shared by the session --------

AGENT_TENANT = "handbook"
HANDBOOK = {
    "refunds.md": "# Refunds\n\nCustomers can request a refund within 30 days of delivery. "
    "Refunds are paid back to the original payment method within 5 business days. "
    "Opened software cannot be refunded.",
    "shipping.md": "# Shipping\n\nStandard shipping takes 3 to 5 business days. "
    "Express shipping delivers the next business day for orders placed before 2 pm.",
    "support.txt": "The support desk is open Monday to Friday from 8 am to 6 pm Central "
    "European Time. Urgent incidents can be reported by phone at any time.",
    "security.html": "<html><body><h1>Security</h1><p>Passwords are rotated every 90 days. "
    "Two-factor authentication is mandatory for administrators.</p></body></html>",
}


@pytest.fixture(scope="session")
def agent_home(tmp_path_factory: pytest.TempPathFactory):
    """A platform home with tenant `handbook` indexed by the real Dagster knowledge job, and the
    shipped prompts published: `grounded_qa_system` v1 approved and in production,
    `grounded_qa_user` v1 only a candidate (so the runtime's fallback is exercised)."""
    from agent_platform.settings import Settings
    from tests.homes import index_tenant, promote_shipped_prompts

    root = tmp_path_factory.mktemp("agent")
    home, corpus = root / "home", root / "corpus"
    (home / "dagster").mkdir(parents=True)
    corpus.mkdir()
    for name, text in HANDBOOK.items():
        (corpus / name).write_text(text, encoding="utf-8")
    settings = Settings(home=home)
    index_tenant(settings, AGENT_TENANT, corpus)
    promote_shipped_prompts(settings)
    return home


@pytest.fixture
def agent_settings(agent_home):
    from agent_platform.settings import Settings

    return Settings(home=agent_home)


@pytest.fixture
def make_runtime(agent_settings, embedder):
    """`make_runtime(**runtime_settings_fields, agent=…, access=…, settings=…)`: an AgentRuntime
    over the shared home (closed after the test). Retries are fast and limits generous."""
    from agent_platform.knowledge.service import KnowledgeBase
    from agent_platform.runtime.agent import AgentRuntime
    from agent_platform.runtime.config import RateLimitSettings, RetrySettings, RuntimeSettings

    built = []

    def make(*, agent=None, access=None, settings=None, max_calls: int = 10, **fields):
        settings = settings or agent_settings
        fields.setdefault(
            "retry", RetrySettings(attempts=3, initial_delay_s=0.01, max_delay_s=0.05, timeout_s=5)
        )
        fields.setdefault(
            "rate_limits",
            RateLimitSettings(user_tokens_per_minute=1_000_000, global_tokens_per_minute=10**7),
        )
        runtime = AgentRuntime.from_settings(
            settings,
            agent,
            RuntimeSettings(**fields),
            knowledge=KnowledgeBase(settings, embedder=embedder),
            access=access,
            max_concurrent_model_calls=max_calls,
        )
        built.append(runtime)
        return runtime

    yield make
    for runtime in built:
        runtime.close()
