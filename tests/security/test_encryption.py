"""Encryption at rest on real stores and through the CLI: tampering and moved ciphertexts are
refused, rotation under concurrent traffic loses nothing, a wrong or missing key fails closed
with one line, rotation runs (audited) from the CLI and from the Dagster asset."""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from agent_platform.audit import open_audit_log
from agent_platform.cli.main import app
from agent_platform.runtime.memory import (
    MemoryScope,
    SQLiteConversationStore,
    SQLiteWorkingMemory,
    Turn,
)
from agent_platform.security.crypto import (
    DecryptionError,
    KeyServiceError,
    forget_key_rings,
    key_status,
    rotate_keys,
    value_cipher,
)
from agent_platform.settings import Settings

runner = CliRunner(env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
SCOPE = MemoryScope("acme", "alice", "s1")


@pytest.fixture(autouse=True)
def fresh_key_rings():
    forget_key_rings()
    yield
    forget_key_rings()


def _one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_local_key_file_is_generated_private(settings: Settings) -> None:
    cipher = value_cipher(settings)
    token = cipher.seal("acme", "t", "r", "the secret")
    assert token.startswith("enc:v1:1:") and "the secret" not in token
    assert cipher.open("acme", "t", "r", token) == "the secret"
    keys = settings.home_dir / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for name in ("kek.json", "data_keys.sqlite"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600
    assert cipher.seal("acme", "t", "r", "the secret") != token  # a fresh nonce every time


def test_tampered_or_moved_ciphertext_is_refused(settings: Settings) -> None:
    path = settings.home_dir / "runtime" / "working.sqlite"
    working = SQLiteWorkingMemory(path, cipher=value_cipher(settings))
    working.put(SCOPE, "plan", {"card": "4111 1111 1111 1111"})
    working.put(SCOPE, "other", {"x": 1})
    assert working.get(SCOPE, "plan") == {"card": "4111 1111 1111 1111"}
    raw = sqlite3.connect(path)
    stored = raw.execute("SELECT value FROM working_memory WHERE key = 'plan'").fetchone()[0]
    assert "4111" not in stored
    # moved onto another record of the same tenant
    raw.execute("UPDATE working_memory SET value = ? WHERE key = 'other'", (stored,))
    raw.commit()
    with pytest.raises(DecryptionError, match="failed authentication"):
        working.get(SCOPE, "other")
    # one character of the ciphertext changed
    flipped = stored[:-6] + ("A" if stored[-6] != "A" else "B") + stored[-5:]
    raw.execute("UPDATE working_memory SET value = ? WHERE key = 'plan'", (flipped,))
    raw.commit()
    with pytest.raises(DecryptionError, match=r"working_memory of tenant 'acme': ciphertext"):
        working.get(SCOPE, "plan")
    # a plaintext value slipped in is refused too (not silently accepted)
    raw.execute("UPDATE working_memory SET value = '{\"card\": 1}' WHERE key = 'plan'")
    raw.commit()
    with pytest.raises(DecryptionError, match="not encrypted; refused"):
        working.get(SCOPE, "plan")
    raw.close()
    working.close()


def test_tampered_conversation_is_refused_through_the_cli(platform_home: Path) -> None:
    path = platform_home / "runtime" / "working.sqlite"
    store = SQLiteConversationStore(path, cipher=value_cipher(Settings(home=platform_home)))
    store.append(SCOPE, [Turn("user", "my IBAN is DE89 3704 0044 0532 0130 00")])
    store.append(SCOPE, [Turn("assistant", "noted")])
    store.close()
    args = ["runtime", "history", "--session", "s1", "--tenant", "acme", "--user", "alice"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "v2  2 turn(s)" in result.stdout, result.output
    raw = sqlite3.connect(path)  # version 1's transcript copied over version 2's
    raw.execute(
        "UPDATE conversation_versions SET turns = "
        "(SELECT turns FROM conversation_versions WHERE version = 1) WHERE version = 2"
    )
    raw.commit()
    raw.close()
    forget_key_rings()
    line = _one_line_error(runner.invoke(app, args))
    assert "conversation_versions of tenant 'acme': ciphertext failed authentication" in line
    assert "IBAN" not in line


def test_rotation_during_concurrent_traffic_loses_and_corrupts_nothing(settings: Settings) -> None:
    path = settings.home_dir / "runtime" / "working.sqlite"
    cipher = value_cipher(settings)
    cipher.ring.cache_ttl_s = 0.01  # serving processes notice new data keys at once
    working = SQLiteWorkingMemory(path, cipher=cipher)
    conversations = SQLiteConversationStore(path, cipher=cipher)
    forget_key_rings()  # rotations below use a key ring of their own, as the Dagster run would
    errors: list[BaseException] = []
    writes = 25

    def traffic(worker: int) -> None:
        scope = MemoryScope(f"tenant{worker % 3}", f"user{worker}", "s")
        try:
            for n in range(writes):
                value = {"n": n, "secret": f"s-{worker}-{n}"}
                working.put(scope, f"k{n}", value)
                conversations.append(scope, [Turn("user", f"message {n}")])
                assert working.get(scope, f"k{n}") == value
                assert conversations.current(scope).turns[-1].content == f"message {n}"
        except BaseException as exc:  # reported below
            errors.append(exc)

    def rotations() -> None:
        try:
            for _ in range(3):
                rotate_keys(settings, actor={"username": "test"}, force=True, batch_size=2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=traffic, args=(w,)) for w in range(4)]
    threads.append(threading.Thread(target=rotations))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    status = key_status(settings)
    assert status.kek_version == 4
    assert set(status.data_keys_by_kek_version) == {4}  # everything re-wrapped under the newest
    assert [v["retired_at"] is not None for v in status.kek_versions] == [True] * 3 + [False]
    forget_key_rings()  # a process started after the rotations reads everything back
    fresh = value_cipher(settings)
    reread = SQLiteWorkingMemory(path, cipher=fresh)
    reread_conversations = SQLiteConversationStore(path, cipher=fresh)
    for worker in range(4):
        scope = MemoryScope(f"tenant{worker % 3}", f"user{worker}", "s")
        for n in range(writes):
            assert reread.get(scope, f"k{n}") == {"n": n, "secret": f"s-{worker}-{n}"}
        state = reread_conversations.current(scope)
        assert state.version == writes
        assert [t.content for t in state.turns] == [f"message {n}" for n in range(writes)]
    records = [r for r in open_audit_log(settings).tail(10) if r.kind == "keys.rotate"]
    assert len(records) == 3 and all(r.outcome == "success" for r in records)
    for store in (working, conversations, reread, reread_conversations):
        store.close()


def test_keys_cli_rotates_and_reports(platform_home: Path) -> None:
    value_cipher(Settings(home=platform_home)).seal("acme", "t", "r", "x")
    forget_key_rings()
    result = runner.invoke(app, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "key-encryption key v1 -> v2" in result.stdout and "1 new data key(s)" in result.stdout
    forget_key_rings()
    result = runner.invoke(app, ["keys", "status", "--json"])
    assert result.exit_code == 0, result.output
    assert '"kek_version": 2' in result.stdout and '"data_keys": 2' in result.stdout
    forget_key_rings()
    result = runner.invoke(app, ["keys", "rotate", "--if-due"])
    assert result.exit_code == 0 and "not rotated: not due" in result.stdout
    rotation = [r for r in open_audit_log(Settings(home=platform_home)).tail(5)]
    assert [r.kind for r in rotation] == ["keys.rotate"]
    assert rotation[0].details["kek_version"] == 2 and rotation[0].actor["via"] == "cli"


def test_wrong_or_missing_key_fails_closed_with_one_line(platform_home: Path) -> None:
    settings = Settings(home=platform_home)
    value_cipher(settings).seal("acme", "t", "r", "x")  # a data key wrapped by the key file
    forget_key_rings()
    wrong = base64.b64encode(os.urandom(32)).decode()
    result = runner.invoke(app, ["keys", "status"], env={"AGENT_PLATFORM_ENCRYPTION_KEK": wrong})
    assert "wrong key" in _one_line_error(result)
    forget_key_rings()
    result = runner.invoke(app, ["keys", "status"], env={"AGENT_PLATFORM_ENCRYPTION_KEK": "abc"})
    assert "not a base64-encoded 256-bit key" in _one_line_error(result)
    forget_key_rings()
    (platform_home / "keys" / "kek.json").unlink()
    line = _one_line_error(runner.invoke(app, ["run", "--tenant", "acme", "--user", "u", "hi"]))
    assert "kek.json is missing but 1 data keys are wrapped by it" in line
    assert not (platform_home / "keys" / "kek.json").exists()  # never silently replaced
    forget_key_rings()
    line = _one_line_error(runner.invoke(app, ["keys", "rotate"]))
    assert "is missing" in line


def test_production_without_a_key_service_fails_at_start(platform_home: Path) -> None:
    env = {
        "AGENT_PLATFORM_PROFILE": "production",
        "AGENT_PLATFORM_POSTGRES_URL": "postgresql://agent@db.invalid/agents",
        "AGENT_PLATFORM_MLFLOW_TRACKING_URI": "http://mlflow.invalid",
        "AGENT_PLATFORM_WEAVIATE_URL": "http://weaviate.invalid",
    }
    line = _one_line_error(runner.invoke(app, ["serve"], env=env))
    assert "needs a key service" in line and "AGENT_PLATFORM_ENCRYPTION_KMS_URL" in line
    with pytest.raises(KeyServiceError, match="cannot be turned off"):
        value_cipher(
            Settings(
                **{k.removeprefix("AGENT_PLATFORM_").lower(): v for k, v in env.items()},
                encryption={"enabled": False},
            )
        )


def test_rotation_asset_and_schedule(platform_home: Path) -> None:
    from assets.keys import encryption_keys
    from resources.keys import KeyRingResource
    from sensors.schedules import key_rotation

    resources = {"key_ring": KeyRingResource(home=str(platform_home))}
    value_cipher(Settings(home=platform_home)).seal("acme", "t", "r", "x")
    result = dg.materialize([encryption_keys], resources=resources)
    assert result.success
    meta = result.asset_materializations_for_node("encryption_keys")[0].metadata
    assert meta["rotated"].value is False  # keys younger than 30 days: nothing to do
    forced = {"ops": {"encryption_keys": {"config": {"force": True}}}}
    result = dg.materialize([encryption_keys], resources=resources, run_config=forced)
    meta = result.asset_materializations_for_node("encryption_keys")[0].metadata
    assert meta["rotated"].value is True and meta["kek_version"].value == 2
    assert meta["rewrapped_data_keys"].value == 1 and meta["new_data_keys"].value == 1
    record = open_audit_log(Settings(home=platform_home)).tail(1)[0]
    assert record.kind == "keys.rotate" and record.actor["username"] == "dagster"
    when = datetime(2026, 12, 7, 4, tzinfo=UTC)
    request = key_rotation(dg.build_schedule_context(scheduled_execution_time=when))
    assert isinstance(request, dg.RunRequest) and request.run_key == "key-rotation-20261207"
    assert key_rotation.cron_schedule == "0 4 * * *"


def test_keys_status_in_words_and_with_encryption_off(platform_home: Path) -> None:
    for tenant in ("acme", "beta"):
        value_cipher(Settings(home=platform_home)).seal(tenant, "t", "r", "x")
    forget_key_rings()
    rotated = runner.invoke(app, ["keys", "rotate", "--json"])
    assert rotated.exit_code == 0, rotated.output
    report = json.loads(rotated.stdout)
    assert report["rotated"] and (report["previous_kek_version"], report["kek_version"]) == (1, 2)
    assert (report["new_data_keys"], report["rewrapped"], report["retired_kek_versions"]) == (
        2,
        2,
        [1],
    )
    forget_key_rings()
    result = runner.invoke(app, ["keys", "status"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("key-encryption key: v2 from ")
    assert re.fullmatch(r"  v1: 0 data key\(s\), retired \d{4}-\d\d-\d\dT[\d:]+\+00:00", lines[1])
    assert lines[2] == "  v2: 4 data key(s), active"  # each tenant's first key and its new one
    assert re.fullmatch(
        r"data keys: 4 for 2 tenant\(s\); last rotation \d{4}-[-\dT:]+\+00:00; "
        r"rotation every \d+ days",
        lines[3],
    )

    off = {"AGENT_PLATFORM_ENCRYPTION_ENABLED": "false"}
    result = runner.invoke(app, ["keys", "status"], env=off)
    assert result.exit_code == 0 and result.stdout.startswith("encryption at rest is off")
    line = _one_line_error(runner.invoke(app, ["keys", "rotate"], env=off))
    assert line == "error: encryption at rest is off; nothing to rotate"
    forget_key_rings()
    assert key_status(Settings(home=platform_home)).kek_version == 2  # the refusal rotated nothing
