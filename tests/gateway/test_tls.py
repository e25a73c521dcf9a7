"""TLS 1.3 at the gateway: a real `agent-platform serve` process with a certificate from a local CA
(`trustme`). TLS 1.2 clients are refused, TLS 1.3 clients served, and a renewed certificate is
served without a restart."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from tests.gateway.conftest import REPO, free_port


@dataclass
class TLSGateway:
    port: int
    ca: trustme.CA
    cert_file: Path
    key_file: Path
    process: subprocess.Popen


def _write(cert: trustme.LeafCert, cert_file: Path, key_file: Path) -> None:
    """Replace both files atomically, as cert-manager or certbot do on renewal."""
    for path, data in (
        (key_file, cert.private_key_pem.bytes()),
        (cert_file, b"".join(p.bytes() for p in cert.cert_chain_pems)),
    ):
        tmp = path.with_suffix(".new")
        tmp.write_bytes(data)
        tmp.replace(path)


def _client_context(ca: trustme.CA, **versions: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    for name, value in versions.items():
        setattr(context, name, value)
    return context


def _served_certificate(gateway: TLSGateway) -> tuple[str, bytes]:
    context = _client_context(gateway.ca)
    with (
        socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return str(tls.version()), tls.getpeercert(binary_form=True) or b""


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSGateway]:
    root = tmp_path_factory.mktemp("tls")
    home = root / "home"
    (home / "dagster").mkdir(parents=True)
    ca = trustme.CA()
    cert_file, key_file = root / "tls.crt", root / "tls.key"
    _write(ca.issue_cert("localhost", "127.0.0.1"), cert_file, key_file)
    port = free_port()
    env = {
        **os.environ,
        "AGENT_PLATFORM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "PYTHONPATH": str(REPO),
        "AGENT_PLATFORM_SERVING_TLS_CERT_FILE": str(cert_file),
        "AGENT_PLATFORM_SERVING_TLS_KEY_FILE": str(key_file),
    }
    env.pop("AGENT_PLATFORM_CONFIG_FILE", None)
    log = root / "serve.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_platform.cli.main", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    gateway = TLSGateway(port, ca, cert_file, key_file, process)
    deadline = time.monotonic() + 180
    try:
        with httpx.Client(verify=_client_context(ca), timeout=2) as client:
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the gateway did not start:\n{log.read_text()}")
                try:
                    if client.get(f"https://localhost:{port}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.5)
        yield gateway
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_tls13_client_is_served(tls_gateway: TLSGateway) -> None:
    context = _client_context(tls_gateway.ca, minimum_version=ssl.TLSVersion.TLSv1_3)
    with httpx.Client(verify=context) as client:
        response = client.get(f"https://localhost:{tls_gateway.port}/healthz")
    assert response.status_code == 200
    assert _served_certificate(tls_gateway)[0] == "TLSv1.3"


def test_tls12_only_client_is_refused(tls_gateway: TLSGateway) -> None:
    context = _client_context(tls_gateway.ca, maximum_version=ssl.TLSVersion.TLSv1_2)
    with (
        socket.create_connection(("127.0.0.1", tls_gateway.port), timeout=10) as raw,
        pytest.raises(ssl.SSLError),  # the server ends the handshake: it offers no 1.2
    ):
        context.wrap_socket(raw, server_hostname="localhost")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://localhost:{tls_gateway.port}/healthz", verify=context)


def test_plain_http_is_not_served(tls_gateway: TLSGateway) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{tls_gateway.port}/healthz", timeout=5)


def test_renewed_certificate_is_served_without_restart(tls_gateway: TLSGateway) -> None:
    _, before = _served_certificate(tls_gateway)
    renewed = tls_gateway.ca.issue_cert("localhost", "127.0.0.1")
    _write(renewed, tls_gateway.cert_file, tls_gateway.key_file)
    version, after = _served_certificate(tls_gateway)
    expected = ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())
    assert after == expected and after != before and version == "TLSv1.3"
    assert tls_gateway.process.poll() is None  # the same process, never restarted
    context = _client_context(tls_gateway.ca)
    assert httpx.get(f"https://localhost:{tls_gateway.port}/healthz", verify=context).is_success


def test_tls_is_required_in_production_and_bad_files_fail_at_start(tmp_path: Path) -> None:
    from agent_platform.gateway.tls import TLSConfigError, tls_factory
    from agent_platform.settings import ServingSettings

    with pytest.raises(TLSConfigError, match="TLS is required in production"):
        tls_factory(ServingSettings(), "production")
    assert tls_factory(ServingSettings(), "local") is None
    assert tls_factory(ServingSettings(tls_required=False), "production") is None
    bad = tmp_path / "tls.pem"
    bad.write_text("not a certificate")
    with pytest.raises(TLSConfigError, match="cannot load"):
        tls_factory(ServingSettings(tls_cert_file=bad, tls_key_file=bad), "local")
    with pytest.raises(TLSConfigError, match="both tls_cert_file and tls_key_file"):
        tls_factory(ServingSettings(tls_cert_file=bad), "local")
