"""The operations tests' real processes: one gateway (`agent-platform serve`, started the way
tests/gateway/conftest.py starts it) over a home with tenant `unindexed` registered without an
index (its requests are answered 503: the injected errors) and a monitored certificate due in 5
days, and one Prometheus scraping the gateway's /metrics every second with rules derived from
deploy/prometheus/rules.yml. Both for the session.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.gateway.conftest import free_port, start_gateway

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
TENANT = "unindexed"
CERTIFICATE_DAYS = 5  # under the 14 days of AgentPlatformCertificateExpiring


def require_tool(name: str) -> str:
    """The tool's path; skip (locally) or fail (CI=true) when it is not installed
    (`make test` installs the Debian packages prometheus and prometheus-alertmanager)."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (apt-get install prometheus prometheus-alertmanager)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


def quick_rules(rules: dict[str, Any], hold: str = "2s") -> dict[str, Any]:
    """The real rules with every non-zero `for:` shortened to `hold`, so a test sees an alert go
    pending and then firing in seconds; expressions, labels and annotations are unchanged."""
    groups = []
    for group in rules["groups"]:
        shortened = [
            {**rule, "for": hold} if rule.get("for", "0m") not in {"0s", "0m"} else dict(rule)
            for rule in group["rules"]
        ]
        groups.append({**group, "interval": "1s", "rules": shortened})
    return {"groups": groups}


def self_signed(path: Path, days: float) -> float:
    """A self-signed PEM certificate valid for `days` more days; returns its notAfter."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway.test")])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    not_after = now + dt.timedelta(days=days)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return not_after.timestamp()


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen
    log: Path

    def get(self, path: str, **params: str) -> dict[str, Any]:
        return httpx.get(f"{self.url}{path}", params=params, timeout=10).json()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from agent_platform.settings import Settings
    from agent_platform.tenants import TenantRegistry

    root = tmp_path_factory.mktemp("operations")
    home, empty = root / "home", root / "empty"
    (home / "dagster").mkdir(parents=True)
    empty.mkdir()
    TenantRegistry(Settings(home=home).tenant_registry_path).register(TENANT, empty)
    certificate = root / "gateway.pem"
    self_signed(certificate, days=CERTIFICATE_DAYS)
    server = start_gateway(
        home,
        root / "gateway.log",
        AGENT_PLATFORM_SERVING_MONITORED_CERTIFICATES=json.dumps([str(certificate)]),
    )
    server.certificate = certificate
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prometheus(gateway: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A real Prometheus on a loopback port, scraping the gateway and evaluating the rules every
    second."""
    binary = require_tool("prometheus")
    root = tmp_path_factory.mktemp("prometheus")
    (root / "rules.yml").write_text(yaml.safe_dump(quick_rules(yaml.safe_load(RULES.read_text()))))
    target = gateway.url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(root / "rules.yml")],
        "scrape_configs": [{"job_name": "gateway", "static_configs": [{"targets": [target]}]}],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = root / "prometheus.log"
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=root,
    )
    server = Prometheus(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {process.returncode}:\n{log.read_text()}"
                )
            try:
                targets = server.get("/api/v1/targets")["data"]["activeTargets"]
                if targets and targets[0]["health"] == "up":
                    break
            except (httpx.TransportError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(f"prometheus did not scrape the gateway in 60 s:\n{log.read_text()}")
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
