"""The shipped dataset is valid and big enough; bad rows are named; the registry keeps lineage,
refuses unknown or unevaluated versions, and records every alias move. SQLite and PostgreSQL."""

import json
from pathlib import Path

import pytest

from agent_platform.evaluation import DatasetError, load_dataset, load_plan
from agent_platform.model_registry import (
    CHALLENGER,
    CHAMPION,
    AgentModelRegistry,
    PromotionRefusedError,
    UnknownAgentError,
    UnknownVersionError,
)
from agent_platform.runtime.agent_config import AgentConfig
from tests.databases import scratch_database
from tests.evaluation.conftest import DATASET


def test_shipped_dataset_is_valid_and_covers_the_corpus() -> None:
    dataset = load_dataset(DATASET).require_valid()
    assert len(dataset.examples) >= 40
    unanswerable = [e for e in dataset.examples if not e.answerable]
    assert len(unanswerable) >= 5
    docs = {p.name for p in (DATASET.parents[2] / "docs").iterdir()}
    cited = {s for e in dataset.examples for s in e.relevant_sources}
    assert cited <= docs, cited - docs
    assert sum(bool(e.paraphrases) for e in dataset.examples) >= 10
    subset = dataset.subset(6)
    assert len(subset) == 6 and any(not e.answerable for e in subset)


def test_malformed_rows_are_named(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in DATASET.read_text().splitlines()][:5]
    rows[1]["key_facts"] = []
    rows[2]["answerable"] = "yes"
    rows[3]["id"] = rows[0]["id"]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    dataset = load_dataset(path)
    problems = {(p.line, p.message) for p in dataset.problems}
    assert (2, "answerable rows need a reference, key_facts and relevant_sources") in problems
    assert (3, "answerable must be true or false") in problems
    assert (1, "id is not unique") in problems and (4, "id is not unique") in problems
    assert any(line == 6 and "not valid JSON" in msg for line, msg in problems)
    with pytest.raises(DatasetError, match=r"bad.jsonl: 5 invalid row\(s\)"):
        dataset.require_valid()


def _exercise_registry(registry: AgentModelRegistry) -> None:
    config = AgentConfig(name="qa-agent", models=["extractive"])
    lineage = {
        "version_key": "k1",
        "index_snapshot_id": "snap-1",
        "prompt.grounded_qa_system.version": "3",
    }
    v1, created = registry.register(config, lineage)
    assert created and v1.version == 1 and v1.tags["index_snapshot_id"] == "snap-1"
    again, created = registry.register(config, lineage)
    assert not created and again.version == 1
    _, created = registry.register(
        config.model_copy(update={"models": ["gemma-3-270m"]}), {"version_key": "k2"}
    )
    assert created
    assert registry.load_config("qa-agent", 2).models == ["gemma-3-270m"]

    with pytest.raises(UnknownVersionError, match="no version 9"):
        registry.promote("qa-agent", 9, by="alice")
    with pytest.raises(UnknownAgentError, match="no registered agent named 'nope'"):
        registry.promote("nope", 1, by="alice")
    with pytest.raises(PromotionRefusedError, match="v1 has no evaluation"):
        registry.promote("qa-agent", 1, by="alice")
    registry.record_evaluation(
        "qa-agent",
        2,
        run_id="r2",
        metrics={"accuracy": 0.5},
        gates_passed=False,
        dataset_version="d",
        failed_gates=["accuracy 0.5 < 0.95"],
    )
    with pytest.raises(PromotionRefusedError, match=r"failed its quality gates \(accuracy 0.5 <"):
        registry.promote("qa-agent", 2, by="alice")
    assert registry.champion("qa-agent") is None  # a failed gate never moves champion

    for version in (1, 2):
        registry.record_evaluation(
            "qa-agent",
            version,
            run_id=f"r{version}",
            metrics={"accuracy": 1.0},
            gates_passed=True,
            dataset_version="d",
        )
    registry.set_challenger("qa-agent", 2, by="eval")
    registry.promote("qa-agent", 1, by="alice", reason="first")
    registry.promote("qa-agent", 2, by="bob")
    assert registry.aliases("qa-agent") == {CHAMPION: 2, CHALLENGER: 2}
    event = registry.rollback("qa-agent", by="oncall")
    assert (event.from_version, event.to_version, event.by) == (2, 1, "oncall")
    assert registry.champion("qa-agent").version == 1
    assert registry.load_config("qa-agent").models == ["extractive"]
    with pytest.raises(PromotionRefusedError, match="already the champion"):
        registry.rollback("qa-agent", by="oncall", to=1)
    actions = [
        (e.action, e.alias, e.from_version, e.to_version) for e in registry.history("qa-agent")
    ]
    assert actions == [
        ("challenger", CHALLENGER, None, 2),
        ("promote", CHAMPION, None, 1),
        ("promote", CHAMPION, 1, 2),
        ("rollback", CHAMPION, 2, 1),
    ]
    assert registry.get("qa-agent", 1).metrics == {"accuracy": 1.0}


def test_registry_on_the_embedded_sqlite_store(eval_settings) -> None:
    _exercise_registry(AgentModelRegistry.from_settings(eval_settings))


@pytest.mark.postgres
def test_registry_on_a_postgresql_backed_store(postgres_url: str, tmp_path: Path) -> None:
    with scratch_database(postgres_url, "mlflow_eval") as url:
        _exercise_registry(AgentModelRegistry(url, (tmp_path / "artifacts").as_uri()))


def test_plan_ships_two_candidates_of_one_agent() -> None:
    plan = load_plan()
    assert set(plan.candidates) >= {"extractive", "gemma"}
    assert {c.config.name for c in plan.candidates.values()} == {plan.agent}
    assert plan.dataset_path == DATASET.resolve()
    assert plan.gates.accuracy == 0.95 and plan.gates.consistency == 0.90
