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
    """

    def __init__(self) -> None:
        self.script: list[str] = ["ok"]
        self.text = "Hosted answer."
        self.hang_s = 2.0
        self.requests = 0
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
                action = owner.script[min(index, len(owner.script) - 1)]
                if action == "hang":
                    time.sleep(owner.hang_s)
                    action = "ok"
                if action in {"500", "401"}:
                    self._send(int(action), {"error": {"message": f"fake {action}"}})
                elif action == "garbage":
                    self._raw(200, b"<html>definitely not json</html>", "text/html")
                else:
                    content = "" if action == "empty" else owner.text
                    self._send(200, _completion(body.get("model", "fake"), content))

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


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    monkeypatch.setenv("FAKE_OPENAI_API_KEY", "sk-test")
    server = FakeOpenAI()
    yield server
    server.close()
