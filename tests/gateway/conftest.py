"""One real gateway process for the session: `agent-platform serve` on an ephemeral loopback port
over a home with tenant `handbook` indexed by the real Dagster knowledge job, the shipped prompts
published, and tenant `unindexed` registered without an index (for the 503)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
TENANT = "handbook"
HANDBOOK = {
    "refunds.md": "# Refunds\n\nCustomers can request a refund within 30 days of delivery. "
    "Refunds are paid back to the original payment method within 5 business days. "
    "Opened software cannot be refunded.",
    "shipping.md": "# Shipping\n\nStandard shipping takes 3 to 5 business days. "
    "Express shipping delivers the next business day for orders placed before 2 pm.",
    "support.txt": "The support desk is open Monday to Friday from 8 am to 6 pm Central "
    "European Time. Urgent incidents can be reported by phone at any time.",
}
QUESTION = "How long do refunds take to be paid back?"
# The shared server's bounds, small enough to provoke 429 and 503 through the wire.
USER_REQUESTS_PER_MINUTE = 20
MAX_CONCURRENT_REQUESTS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Gateway:
    url: str
    home: Path
    process: subprocess.Popen
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def start_gateway(home: Path, log: Path, **env: str) -> Gateway:
    """`python -m agent_platform.cli.main serve` on a free loopback port; returns once /readyz
    says ready (models and indexes loaded)."""
    port = free_port()
    environment = {
        **os.environ,
        "AGENT_PLATFORM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "PYTHONPATH": str(REPO),
        **env,
    }
    environment.pop("AGENT_PLATFORM_CONFIG_FILE", None)
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_platform.cli.main", "serve", "--port", str(port)],
        env=environment,
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return Gateway(url, home, process, log)
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"the gateway was not ready within 180 s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def gateway_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from agent_platform.settings import Settings
    from agent_platform.tenants import TenantRegistry
    from tests.homes import index_tenant, promote_shipped_prompts

    root = tmp_path_factory.mktemp("gateway")
    home, corpus, empty = root / "home", root / "corpus", root / "empty"
    (home / "dagster").mkdir(parents=True)
    corpus.mkdir()
    empty.mkdir()
    for name, text in HANDBOOK.items():
        (corpus / name).write_text(text, encoding="utf-8")
    settings = Settings(home=home)
    index_tenant(settings, TENANT, corpus)
    TenantRegistry(settings.tenant_registry_path).register("unindexed", empty)
    promote_shipped_prompts(settings)
    return home


@pytest.fixture(scope="session")
def gateway(gateway_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The session's server, with small limits so 429 and 503 can be provoked."""
    server = start_gateway(
        gateway_home,
        tmp_path_factory.mktemp("logs") / "gateway.log",
        AGENT_PLATFORM_RUNTIME_RATE_LIMITS__USER_REQUESTS_PER_MINUTE=str(USER_REQUESTS_PER_MINUTE),
        AGENT_PLATFORM_SERVING_MAX_CONCURRENT_REQUESTS=str(MAX_CONCURRENT_REQUESTS),
    )
    yield server
    server.stop()


@pytest.fixture
def limits() -> dict[str, int]:
    return {
        "user_requests_per_minute": USER_REQUESTS_PER_MINUTE,
        "max_concurrent_requests": MAX_CONCURRENT_REQUESTS,
    }


@pytest.fixture
def client(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers={"X-Tenant": TENANT}, timeout=60) as c:
        yield c


@pytest.fixture
def ask() -> Callable[..., dict]:
    def body(question: str = QUESTION, *, user: str, **extra) -> dict:
        return {
            "model": "grounded-qa",
            "messages": [{"role": "user", "content": question}],
            "user": user,
            **extra,
        }

    return body


@pytest.fixture(scope="session")
def launch() -> Callable[..., Gateway]:
    """`launch(home, log, **env)`: another gateway process, for tests that stop it."""
    return start_gateway
