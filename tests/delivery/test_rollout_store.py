"""One contract for the rollout state in SQLite (one host) and PostgreSQL (several hosts): the
newest rollout wins, a save updates in place, approvals are one per role, reading an empty store
creates nothing, and two stores on one database (two hosts) see each other's writes. The settings
pick PostgreSQL in production or with `delivery.postgres_url`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from agent_platform.delivery.state import (
    PostgresRolloutStore,
    Rollout,
    RolloutStore,
    SQLiteRolloutStore,
    Stage,
    open_rollout_store,
)
from agent_platform.settings import Settings


@pytest.fixture
def delivery_schema(postgres_url: str) -> Iterator[str]:
    """A schema of its own for one test, dropped afterwards."""
    schema = f"delivery_test_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[RolloutStore, RolloutStore]:
    """Two stores over the same state, as two hosts would open it."""
    if request.param == "sqlite":
        path = tmp_path / "delivery" / "rollouts.sqlite"
        return SQLiteRolloutStore(path), SQLiteRolloutStore(path)
    url = request.getfixturevalue("postgres_url")
    schema = request.getfixturevalue("delivery_schema")
    return PostgresRolloutStore(url, schema), PostgresRolloutStore(url, schema)


def test_the_rollout_contract(stores: tuple[RolloutStore, RolloutStore]) -> None:
    controller, gateway = stores
    assert gateway.latest("qa") is None and gateway.agents() == []  # empty, nothing created
    first = controller.save(Rollout(agent="qa", blue="1", green="2", stage=Stage.ROLLED_BACK))
    second = controller.save(Rollout(agent="qa", blue="1", green="3", stage=Stage.DEPLOYMENT))
    controller.save(Rollout(agent="other", blue="5", green="6", stage=Stage.COMPLETED))

    seen = gateway.latest("qa")
    assert seen is not None and (seen.id, seen.green, seen.weight) == (second.id, "3", 0)
    assert gateway.active("qa") == seen and gateway.active("other") is None
    assert [r.id for r in gateway.history("qa")] == [second.id, first.id]
    assert [r.id for r in gateway.history("qa", limit=1)] == [second.id]
    assert sorted(gateway.agents()) == ["other", "qa"]

    second.weight, second.samples = 50, [(1.0, {"requests": 3.0, "errors": 0.0, "buckets": {}})]
    second.note("deployment", outcome="50%")
    controller.save(second)  # in place: still two rollouts of qa
    again = gateway.latest("qa")
    assert again is not None and again.weight == 50 and again.events[-1]["outcome"] == "50%"
    assert again.samples == second.samples and len(gateway.history("qa")) == 2

    controller.save(first)  # the one saved last is the newest
    assert gateway.latest("qa").id == first.id  # type: ignore[union-attr]


def test_approvals_one_per_role(stores: tuple[RolloutStore, RolloutStore]) -> None:
    controller, gateway = stores
    assert gateway.approvals("qa", "7") == {}
    controller.approve("qa", "7", role="release_manager", subject="rita", verified=False)
    controller.approve("qa", "7", role="release_manager", subject="rosa", verified=True)
    controller.approve("qa", "7", role="operations_lead", subject="omar", verified=True)
    controller.approve("qa", "8", role="operations_lead", subject="olga", verified=False)
    approvals = gateway.approvals("qa", "7")
    assert {r: (a["subject"], a["verified"]) for r, a in approvals.items()} == {
        "release_manager": ("rosa", True),
        "operations_lead": ("omar", True),
    }
    assert isinstance(approvals["release_manager"]["at"], float)


def test_reading_an_empty_sqlite_store_creates_no_file(tmp_path: Path) -> None:
    store = SQLiteRolloutStore.under(tmp_path)
    assert store.latest("qa") is None and store.approvals("qa", "1") == {}
    assert not (tmp_path / "delivery").exists()


def test_the_settings_pick_the_backend(
    tmp_path: Path, postgres_url: str, delivery_schema: str
) -> None:
    assert isinstance(open_rollout_store(Settings(home=tmp_path)), SQLiteRolloutStore)
    delivery = {"postgres_url": postgres_url, "postgres_schema": delivery_schema}
    store = open_rollout_store(Settings(home=tmp_path, delivery=delivery))
    assert isinstance(store, PostgresRolloutStore) and store.schema == delivery_schema
    store.save(Rollout(agent="qa", blue="1", green="2"))
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(f'SELECT agent FROM "{delivery_schema}".rollouts').fetchall()
    assert rows == [("qa",)]
    assert not (tmp_path / "delivery").exists()  # nothing written under the home
    production = Settings(
        home=tmp_path,
        profile="production",
        postgres_url="postgresql://agent@db/agents",
        mlflow_tracking_uri="http://mlflow:5000",
        weaviate_url="http://weaviate:8080",
    )
    chosen = open_rollout_store(production)  # connects on first use only
    assert isinstance(chosen, PostgresRolloutStore) and chosen.url == production.postgres_url
    assert chosen.schema == "agent_delivery"


def test_a_bad_schema_name_is_refused(postgres_url: str) -> None:
    with pytest.raises(ValueError, match="schema: must be a lower-case SQL identifier"):
        PostgresRolloutStore(postgres_url, 'x"; DROP TABLE y')


def test_the_gateways_view_follows_the_controllers_writes(
    stores: tuple[RolloutStore, RolloutStore],
) -> None:
    """A gateway on another host (its own store) routes by what the controller saved."""
    from agent_platform.gateway.rollouts import RolloutView

    controller, gateway = stores
    changed: list[str] = []
    view = RolloutView(gateway, changed.append, ttl_s=0)
    assert view.refresh("qa") is None and view.version("qa", "alice", "s1") is None
    live = controller.save(
        Rollout(agent="qa", blue="1", green="2", stage=Stage.DEPLOYMENT, weight=100)
    )
    view.refresh("qa")
    assert view.version("qa", "alice", "s1") == "2" and changed == ["qa"]
    live.stage, live.weight = Stage.ROLLED_BACK, 0
    controller.save(live)
    view.refresh("qa")
    assert view.version("qa", "alice", "s1") is None and changed == ["qa", "qa"]
