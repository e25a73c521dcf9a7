"""The audit log is append-only and tamper-evident on both stores: `audit verify` names the record
that was modified, deleted, inserted or reordered, and concurrent writers never fork the chain."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from agent_platform.audit import AuditLog, PostgresAuditLog, SQLiteAuditLog, open_audit_log
from agent_platform.cli.main import app
from agent_platform.readiness.security import audit_log_item
from agent_platform.security import Identity

runner = CliRunner(env={"COLUMNS": "400"})
ALICE = Identity(subject="u-1", username="alice", roles=frozenset({"operator"})).as_record()


class Backend:
    """A log plus raw SQL access to it, as an attacker with database access would have."""

    def __init__(self, log: AuditLog, execute: Callable[[str], None], table: str) -> None:
        self.log, self.execute, self.table = log, execute, table

    def tamper(self, statements: str) -> None:
        for statement in statements.split(";"):
            self.execute(statement.format(t=self.table))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "audit.sqlite"
        log = SQLiteAuditLog(path)

        def execute(statement: str) -> None:
            with sqlite3.connect(path) as conn:
                conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
                conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
                conn.execute(statement)

        yield Backend(log, execute, "audit_log")
        return
    url = request.getfixturevalue("postgres_url")
    schema = f"audit_test_{uuid.uuid4().hex[:8]}"
    log = PostgresAuditLog(url, schema=schema)

    def execute_pg(statement: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE {schema}.audit_log DISABLE TRIGGER USER")
            conn.execute(statement)

    try:
        yield Backend(log, execute_pg, f"{schema}.audit_log")
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _fill(log: AuditLog, n: int = 5) -> None:
    for i in range(n):
        log.record(
            "prompt.approve",
            actor=ALICE,
            action="approve",
            outcome="granted",
            tenant="acme",
            resource=f"grounded_qa_system@{i + 1}",
            role="lead_architect",
        )


def test_an_untouched_chain_verifies(backend: Backend) -> None:
    _fill(backend.log)
    result = backend.log.verify()
    assert result.ok, result.problems
    assert result.records == 5
    assert [r.seq for r in backend.log.tail(3)] == [3, 4, 5]


def test_the_log_refuses_update_and_delete(backend: Backend) -> None:
    _fill(backend.log, 2)
    raw: Callable[[str], None]
    if isinstance(backend.log, SQLiteAuditLog):

        def raw(statement: str) -> None:
            with sqlite3.connect(backend.log.path) as conn:
                conn.execute(statement)

        errors: tuple[type[Exception], ...] = (sqlite3.DatabaseError,)
    else:

        def raw(statement: str) -> None:
            with psycopg.connect(backend.log.url, autocommit=True) as conn:
                conn.execute(statement)

        errors = (psycopg.Error,)
    with pytest.raises(errors, match="append-only"):
        raw(f"UPDATE {backend.table} SET outcome = 'denied' WHERE seq = 1")
    with pytest.raises(errors, match="append-only"):
        raw(f"DELETE FROM {backend.table} WHERE seq = 1")
    assert backend.log.verify().ok


@pytest.mark.parametrize(
    ("attack", "named"),
    [
        ("UPDATE {t} SET outcome = 'denied' WHERE seq = 3", "record 3 was modified"),
        ("DELETE FROM {t} WHERE seq = 3", "record 3 deleted"),
        ("DELETE FROM {t} WHERE seq = 5", "records after 4 deleted"),
        (
            "UPDATE {t} SET seq = 1002 WHERE seq = 2;UPDATE {t} SET seq = 2 WHERE seq = 4;"
            "UPDATE {t} SET seq = 4 WHERE seq = 1002",
            "record 2",
        ),
        (
            "INSERT INTO {t} SELECT seq + 100, at, kind, actor, action, outcome, tenant, resource, "
            "details, prev_hash, hash FROM {t} WHERE seq = 2",
            "record 102",
        ),
    ],
    ids=["modified", "deleted", "deleted-last", "reordered", "inserted"],
)
def test_verify_names_the_tampered_record(backend: Backend, attack: str, named: str) -> None:
    _fill(backend.log)
    backend.tamper(attack)
    result = backend.log.verify()
    assert not result.ok
    assert any(named in problem for problem in result.problems), result.problems


def test_concurrent_writers_keep_one_chain(backend: Backend) -> None:
    def write(i: int) -> int:
        return backend.log.record(
            "authz.denial", actor=ALICE, action="query", outcome="denied", tenant=f"t{i % 3}"
        ).seq

    with ThreadPoolExecutor(max_workers=8) as pool:
        seqs = sorted(pool.map(write, range(40)))
    assert seqs == list(range(1, 41))
    assert backend.log.verify().ok


def test_cli_verify_and_tail(platform_home: Path) -> None:
    from agent_platform.settings import Settings

    log = open_audit_log(Settings(home=platform_home))
    _fill(log, 3)
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "3 records, chain intact" in result.output

    tail = runner.invoke(app, ["audit", "tail", "--json", "-n", "2"])
    assert tail.exit_code == 0, tail.output
    records = json.loads(tail.stdout)
    assert [r["seq"] for r in records] == [2, 3]
    assert records[0]["actor"]["username"] == "alice"
    assert records[1]["prev_hash"] == records[0]["hash"]
    item = audit_log_item(Settings(home=platform_home))  # the readiness report reads it
    assert item.status == "pass" and item.detail.startswith("chain of 3 records verifies")
    assert item.evidence["approvals_and_signoffs"] == 3

    with sqlite3.connect(platform_home / "audit" / "audit.sqlite") as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute('UPDATE audit_log SET actor = \'{"subject": "mallory"}\' WHERE seq = 2')
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "record 2 was modified" in broken.output
    failed = audit_log_item(Settings(home=platform_home))
    assert failed.status == "fail" and "record 2 was modified" in failed.detail
    assert "Traceback" not in broken.output
    assert oct((platform_home / "audit" / "audit.sqlite").stat().st_mode & 0o777) == "0o600"


def test_cli_tail_table_names_who_acted_and_marks_unverified_identities(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_platform.cli import audit as audit_cli
    from agent_platform.settings import Settings

    # a 160-column terminal: without a terminal rich assumes 80 and folds the cells
    monkeypatch.setattr(audit_cli.console, "width", 160)

    log = open_audit_log(Settings(home=platform_home))
    _fill(log, 1)
    local = {"username": "bob", "kind": "user", "verified": False}  # `--as bob`, never signed in
    log.record("models.promote", actor=local, action="promote", outcome="success")
    log.record("keys.rotate", actor={"subject": "svc-7"}, action="rotate", outcome="failure")
    result = runner.invoke(app, ["audit", "tail", "-n", "3"])
    assert result.exit_code == 0, result.output
    rows = [line.split("│")[1:-1] for line in result.stdout.splitlines() if line.count("│") == 8]
    cells = [[c.strip() for c in row] for row in rows]
    assert [(c[0], c[2], c[3], c[5], c[6]) for c in cells] == [
        ("1", "prompt.approve", "alice", "acme", "granted"),
        ("2", "models.promote", "bob (unverified)", "", "success"),
        ("3", "keys.rotate", "svc-7", "", "failure"),
    ]
