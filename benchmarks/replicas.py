"""Gateway replicas behind HAProxy on loopback: the configuration and the state they share.

Used by `benchmarks/serve.py --replicas` and `tests/gateway/test_replicas.py`. Each replica is an
`agent-platform serve` process; HAProxy (Debian's `haproxy`) balances them round robin with the
configuration rendered from deploy/haproxy/haproxy.cfg.tmpl. The replicas share state the way
production does: rate limits and short-term memory in Redis, conversations and working memory in
PostgreSQL, each under a namespace of its own (key prefixes, a schema) so runs never meet.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

import httpx

ROOT = Path(__file__).resolve().parents[1]
HAPROXY_TEMPLATE = ROOT / "deploy" / "haproxy" / "haproxy.cfg.tmpl"
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def haproxy_binary() -> str | None:
    """HAProxy on PATH, else Debian's /usr/sbin/haproxy (sbin is not on every user's PATH)."""
    found = shutil.which("haproxy")
    if found:
        return found
    return "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None


def render_haproxy_config(bind: str, servers: Sequence[str]) -> str:
    """The template with `bind` (host:port) and one `server` line per replica address."""
    lines = "\n".join(f"    server gw{i} {address}" for i, address in enumerate(servers, 1))
    return Template(HAPROXY_TEMPLATE.read_text(encoding="utf-8")).substitute(
        bind=bind, servers=lines
    )


def shared_state_env(
    namespace: str, *, redis_url: str = REDIS_URL, postgres_url: str = POSTGRES_URL
) -> dict[str, str]:
    """Settings that make replicas share what must be consistent, under `namespace`.

    The `local` profile with Redis and PostgreSQL set: the state a session or a quota needs is
    where production keeps it. (Full `production` also needs Weaviate, an MLflow server and OIDC;
    each replica here reads the index and the registry from a home of its own.)"""
    return {
        "AGENT_PLATFORM_REDIS_URL": redis_url,
        "AGENT_PLATFORM_POSTGRES_URL": postgres_url,
        "AGENT_PLATFORM_RUNTIME_RATE_LIMITS__BACKEND": "redis",
        "AGENT_PLATFORM_RUNTIME_RATE_LIMITS__REDIS_KEY_PREFIX": f"{namespace}:ratelimit",
        "AGENT_PLATFORM_RUNTIME_MEMORY__SHORT_TERM_BACKEND": "redis",
        "AGENT_PLATFORM_RUNTIME_MEMORY__REDIS_KEY_PREFIX": f"{namespace}:stm",
        "AGENT_PLATFORM_RUNTIME_MEMORY__WORKING_BACKEND": "postgres",
        "AGENT_PLATFORM_RUNTIME_MEMORY__POSTGRES_SCHEMA": namespace.replace("-", "_"),
    }


def drop_shared_state(
    namespace: str, *, redis_url: str = REDIS_URL, postgres_url: str = POSTGRES_URL
) -> None:
    """Remove the namespace's Redis keys and PostgreSQL schema (nothing else)."""
    import psycopg
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        for pattern in (f"{namespace}:*", f"*{namespace}:*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{namespace.replace("-", "_")}" CASCADE')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Proxy:
    url: str
    process: subprocess.Popen
    config: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=30)


def start_haproxy(servers: Sequence[str], workdir: Path, *, timeout_s: float = 60) -> Proxy:
    """HAProxy in the foreground on a free loopback port, once it answers /readyz with 200
    (a replica passed its health check)."""
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("haproxy: not installed (apt-get install haproxy)")
    port = free_port()
    config = workdir / "haproxy.cfg"
    config.write_text(render_haproxy_config(f"127.0.0.1:{port}", servers), encoding="utf-8")
    check = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy refused {config}: {(check.stdout + check.stderr).strip()}")
    log = (workdir / "haproxy.log").open("wb")
    process = subprocess.Popen(
        [binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"haproxy exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return Proxy(url, process, config)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"haproxy at {url} found no ready replica within {timeout_s} s")
