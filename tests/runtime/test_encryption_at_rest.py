"""Encryption at rest through the real AgentRuntime: a secret planted in requests is readable
through the runtime but absent from the bytes of every SQLite file, Redis value and PostgreSQL
row; state files are private (0600/0700)."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql

from agent_platform.runtime.memory import MemoryScope

AGENT_TENANT = "handbook"
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db", ".sqlite-wal", ".sqlite-shm", ".db-wal", ".db-shm")


def _plant(runtime, secret: str) -> MemoryScope:
    """Two requests of one session carrying the secret (one asks the agent to remember it)."""
    first = runtime.run(
        tenant=AGENT_TENANT, user="planter", input=f"Please remember that my code is {secret}"
    )
    runtime.run(
        tenant=AGENT_TENANT,
        user="planter",
        input=f"Is {secret} a valid refund code?",
        session_id=first.session_id,
    )
    return MemoryScope(AGENT_TENANT, "planter", first.session_id)


def _sqlite_files(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file() and p.name.endswith(SQLITE_SUFFIXES)]


def test_planted_secret_is_in_no_sqlite_file(make_runtime, agent_home: Path) -> None:
    secret = f"ZEBRA-{uuid.uuid4().hex}"
    runtime = make_runtime()
    scope = _plant(runtime, secret)
    s = runtime.services
    # the runtime reads everything back (decrypted) ...
    turns = s.conversation.current(scope).turns
    assert secret in turns[0].content and len(s.conversation.versions(scope)) == 2
    assert any(secret in item.content for item in s.short_term.recent(scope))
    recalled = s.long_term.recall(AGENT_TENANT, "planter", f"my code is {secret}")
    assert any(secret in m.text for m in recalled)
    runtime.close()
    # ... while no SQLite file (memory, index, caches, keys, MLflow) holds it in plaintext
    files = _sqlite_files(agent_home)
    assert any(p.name == "working.sqlite" for p in files)
    leaking = [str(p) for p in files if secret.encode() in p.read_bytes()]
    assert leaking == []
    raw = (agent_home / "runtime" / "working.sqlite").read_bytes()
    wal = agent_home / "runtime" / "working.sqlite-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert b"enc:v1:" in raw  # sealed values are really stored there


def test_state_files_are_private(make_runtime, agent_home: Path) -> None:
    make_runtime().run(tenant=AGENT_TENANT, user="modes", input="How long do refunds take?")
    for directory in (agent_home / "runtime", agent_home / "keys"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    for name in ("runtime/working.sqlite", "runtime/requests.jsonl", "keys/kek.json"):
        path = agent_home / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(agent_home.stat().st_mode) == 0o700


@pytest.mark.postgres
@pytest.mark.redis
def test_planted_secret_is_in_no_postgres_row_or_redis_value(
    make_runtime, agent_settings, postgres_url, redis_url, pg_schema, redis_prefix
) -> None:
    secret = f"OKAPI-{uuid.uuid4().hex}"
    settings = agent_settings.model_copy(
        update={"postgres_url": postgres_url, "redis_url": redis_url}
    )
    runtime = make_runtime(
        settings=settings, memory={"postgres_schema": pg_schema, "redis_key_prefix": redis_prefix}
    )
    scope = _plant(runtime, secret)
    assert secret in runtime.services.conversation.current(scope).turns[0].content
    assert any(secret in i.content for i in runtime.services.short_term.recent(scope))
    entries = runtime.services.working.entries(AGENT_TENANT, "planter", scope.session)
    assert entries and all(isinstance(e.value, dict) for e in entries)

    with psycopg.connect(postgres_url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (pg_schema,),
            )
        ]
        assert {"conversation_versions", "working_memory"} <= set(tables)
        rows = []
        for table in tables:
            query = sql.SQL("SELECT t::text FROM {}.{} t").format(
                sql.Identifier(pg_schema), sql.Identifier(table)
            )
            rows += [r[0] for r in conn.execute(query)]
    assert rows and not [r for r in rows if secret in r]
    assert any("enc:v1:" in r for r in rows)

    client = redis.Redis.from_url(redis_url)
    values = [
        v for k in client.scan_iter(match=f"{redis_prefix}*") for v in client.lrange(k, 0, -1)
    ]
    client.close()
    assert values and not [v for v in values if secret.encode() in v]
    assert all(v.startswith(b"enc:v1:") for v in values)
