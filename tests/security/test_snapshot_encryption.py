"""Index snapshots leave the machine with their text sealed, through `index backup|restore`:
no document word in a snapshot's bytes, a tampered snapshot refused with one line and the live
index kept, old snapshots restorable after a key rotation, a wrong or missing key fails closed.
One home, indexed once, shared by the module."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_platform.cli.main import app
from agent_platform.security.crypto import forget_key_rings
from agent_platform.settings import Settings
from agent_platform.tenants import TenantRegistry
from agent_platform.vectorstore.base import ChunkRecord
from agent_platform.vectorstore.factory import open_vector_store
from agent_platform.vectorstore.snapshots import file_entry, write_json_atomic

runner = CliRunner(env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
TENANT = "vaulted"
SECRET = "The quartermaster passphrase is zephyrine okapi."
CORPUS = {
    "handover.md": f"# Handover\n\n{SECRET} Keep it in the safe.",
    "shipping.md": "# Shipping\n\nStandard shipping takes 3 to 5 business days.",
}
ENV_KEYS = ("AGENT_PLATFORM_HOME", "DAGSTER_HOME")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[Path]:
    """A registered tenant whose index is written through the store API with real embeddings
    (the knowledge job is tested elsewhere; here only snapshots matter)."""
    root = tmp_path_factory.mktemp("snapshots")
    home, corpus = root / "home", root / "corpus"
    (home / "dagster").mkdir(parents=True)
    corpus.mkdir()
    for name, text in CORPUS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    os.environ["AGENT_PLATFORM_HOME"], os.environ["DAGSTER_HOME"] = str(home), str(home / "dagster")
    forget_key_rings()
    try:
        settings = Settings(home=home)
        TenantRegistry(settings.tenant_registry_path).register(TENANT, corpus)
        store = open_vector_store(settings)
        texts = list(CORPUS.values())
        vectors = embedder.embed_texts(texts)
        store.upsert(
            TENANT,
            [
                ChunkRecord(f"{name}#0", name, name, text, vector, {"position": 0})
                for (name, text), vector in zip(CORPUS.items(), vectors, strict=True)
            ],
        )
        store.close()
        yield home
    finally:
        forget_key_rings()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def invoke(*args: str, env: dict[str, str] | None = None):
    forget_key_rings()  # each command opens its key ring as a fresh process would
    return runner.invoke(app, list(args), env=env)


def backup() -> dict:
    result = invoke("index", "backup", "--tenant", TENANT)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def restore(snapshot_id: str, env: dict[str, str] | None = None):
    return invoke("index", "restore", "--tenant", TENANT, "--snapshot", snapshot_id, env=env)


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def assert_index_intact() -> None:
    """The live index still holds the handover, found by its words (keyword index included)."""
    assert invoke("index", "verify", "--tenant", TENANT).exit_code == 0
    found = invoke("search", "--tenant", TENANT, "--json", "--mode", "keyword", "zephyrine")
    assert found.exit_code == 0, found.output
    assert [h["source"] for h in json.loads(found.stdout)["hits"]][:1] == ["handover.md"]


@pytest.fixture(scope="module")
def snap(home: Path) -> dict:
    """One backup of the tenant (a Dagster run), copied where a test needs to damage one."""
    return backup()


def copy_of(snap: dict, name: str) -> dict:
    """A copy of the snapshot under another id (its manifest keeps the id it was sealed with)."""
    location = Path(snap["location"]).with_name(f"{snap['snapshot_id']}-{name}")
    shutil.copytree(snap["location"], location)
    return {**snap, "snapshot_id": location.name, "location": str(location)}


def test_backup_seals_the_text_and_restore_brings_it_back(home: Path, snap: dict) -> None:
    assert snap["text_encrypted"] is True
    location = Path(snap["location"])
    stored = b"".join(p.read_bytes() for p in location.iterdir()).lower()
    for word in (b"zephyrin", b"okapi", b"quartermast", b"shipping takes"):
        assert word not in stored  # no text, no keyword-index term
    live = b"".join(p.read_bytes() for p in (home / "index" / TENANT).glob("data-*/*")).lower()
    assert b"zephyrine" in live  # the live index is not encrypted (see docs/data-protection.md)
    manifest = json.loads((location / "manifest.json").read_text())
    assert manifest["sealed_files"].startswith("enc:v1:")

    restored = restore(snap["snapshot_id"])
    assert restored.exit_code == 0, restored.output
    assert json.loads(restored.stdout)["restored"] == snap["snapshot_id"]
    assert_index_intact()  # decrypted, and the keyword index rebuilt from the text


def _tamper_with_text(location: Path, fix_checksums: bool) -> None:
    """Move one chunk's sealed text onto another chunk (a valid ciphertext, wrong place)."""
    records = location / "records.sqlite"
    records.chmod(0o600)
    conn = sqlite3.connect(records)
    with conn:
        (_, text), (second, _) = conn.execute(
            "SELECT label, text FROM chunks ORDER BY label LIMIT 2"
        ).fetchall()
        conn.execute("UPDATE chunks SET text = ? WHERE label = ?", (text, second))
    conn.close()
    if fix_checksums:
        manifest = json.loads((location / "manifest.json").read_text())
        manifest["files"]["records.sqlite"] = file_entry(records)
        write_json_atomic(location / "manifest.json", manifest)


@pytest.mark.parametrize("fix_checksums", [False, True], ids=["checksums", "sealed-checksums"])
def test_a_tampered_snapshot_is_refused_with_one_line_and_the_index_kept(
    home: Path, snap: dict, fix_checksums: bool
) -> None:
    tampered = copy_of(snap, f"tampered-{fix_checksums}")
    _tamper_with_text(Path(tampered["location"]), fix_checksums)
    line = one_line_error(restore(tampered["snapshot_id"]))
    assert f"snapshot {tampered['snapshot_id']!r} of tenant {TENANT!r} failed verification" in line
    assert "live index is unchanged" in line
    expected = "checksums sealed when it was taken" if fix_checksums else "checksum does not match"
    assert expected in line
    assert_index_intact()


def test_snapshots_taken_before_a_key_rotation_still_restore(home: Path, snap: dict) -> None:
    before = snap
    rotated = invoke("keys", "rotate")
    assert rotated.exit_code == 0, rotated.output
    after = backup()
    old_version = json.loads(Path(before["location"], "manifest.json").read_text())["sealed_files"]
    new_version = json.loads(Path(after["location"], "manifest.json").read_text())["sealed_files"]
    assert old_version.split(":")[2] < new_version.split(":")[2]  # sealed under a newer data key
    for snap in (before, after):
        result = restore(snap["snapshot_id"])
        assert result.exit_code == 0, result.output
        assert_index_intact()


def test_a_wrong_missing_or_disabled_key_fails_closed(home: Path, snap: dict) -> None:
    wrong = ",".join(f"{v}:{base64.b64encode(os.urandom(32)).decode()}" for v in (1, 2, 3))
    line = one_line_error(restore(snap["snapshot_id"], {"AGENT_PLATFORM_ENCRYPTION_KEK": wrong}))
    assert "wrong key" in line
    line = one_line_error(restore(snap["snapshot_id"], {"AGENT_PLATFORM_ENCRYPTION_ENABLED": "0"}))
    assert "encrypted but encryption is off" in line
    kek = home / "keys" / "kek.json"
    kek.rename(kek.with_name("kek.json.away"))
    try:
        line = one_line_error(restore(snap["snapshot_id"]))
        assert "kek.json is missing" in line
    finally:
        kek.with_name("kek.json.away").rename(kek)
    assert_index_intact()
