"""`agent-platform models promote|rollback|compare` against a real local MLflow store, and the
`readiness_report` asset materialized with Dagster."""

from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from agent_platform.cli.models import models_app
from agent_platform.evaluation import EvaluationService, load_dataset, load_plan
from agent_platform.model_registry import CHAMPION, AgentModelRegistry, build_lineage
from agent_platform.settings import Settings
from assets.readiness import readiness_report
from resources.model_registry import EvaluationResource, LocalModelRegistryResource
from tests.evaluation.conftest import DATASET

AGENT = "grounded-qa"


@pytest.fixture
def two_versions(home: Path, tmp_path: Path) -> AgentModelRegistry:
    """v1 (extractive) and v2 (keyword retrieval, k=1) evaluated on 6 examples under lenient
    gates (both pass), and v3 registered but never evaluated."""
    plan_path = tmp_path / "agents.toml"
    plan_path.write_text(
        f'agent = "{AGENT}"\ntenant = "sample"\ndataset = "{DATASET}"\n'
        "[gates]\naccuracy = 0.1\nconsistency = 0.5\nlatency_p95_ms = 60000.0\n"
        '[candidates.extractive]\nmodels = ["extractive"]\n'
        '[candidates.keyword-k1]\nmodels = ["extractive"]\n'
        'retrieval = { k = 1, mode = "keyword" }\n'
    )
    plan = load_plan(plan_path)
    settings = Settings(home=home)
    service = EvaluationService(settings, plan=plan)
    dataset = load_dataset(DATASET)
    for candidate in plan.candidates.values():
        evaluation = service.evaluate_config(
            candidate.key,
            candidate.config,
            dataset.subset(6),
            dataset_version=dataset.version,
            repeats=1,
        )
        assert evaluation.passed, [g.message for g in evaluation.gates]
    unevaluated = plan.candidates["extractive"].config.model_copy(update={"description": "new"})
    lineage = build_lineage(settings, unevaluated, tenant="sample")
    version, created = service.registry.register(unevaluated, lineage)
    assert created and version.version == 3
    return service.registry


def test_models_cli_promotes_rolls_back_and_compares(two_versions: AgentModelRegistry) -> None:
    registry, cli = two_versions, CliRunner()

    def models(*args: str) -> tuple[int, str, str]:
        result = cli.invoke(models_app, list(args))
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = models("promote", "1", "--agent", AGENT, "--by", "alice", "--reason", "first")
    assert code == 0 and "promote champion v- -> v1 by alice (first)" in out
    code, out, _ = models("promote", "2", "--agent", AGENT, "--by", "bob")
    assert code == 0 and "v1 -> v2 by bob" in out
    assert registry.aliases(AGENT)[CHAMPION] == 2
    code, out, _ = models("rollback", AGENT, "--by", "carol")
    assert code == 0 and "rollback champion v2 -> v1 by carol" in out
    assert registry.aliases(AGENT)[CHAMPION] == 1
    code, out, _ = models("compare", "2", "--agent", AGENT)  # against the champion, v1
    assert code == 0 and out.startswith("v2 vs v1: correct: challenger") and "n=6" in out

    code, out, err = models("promote", "99", "--agent", AGENT, "--by", "dave")
    assert code == 1 and not out
    assert err.strip() == f"error: agent {AGENT!r} has no version 99 (versions: [1, 2, 3])"
    code, _, err = models("promote", "3", "--agent", AGENT, "--by", "dave")
    assert code == 1 and f"agent {AGENT!r} v3 has no evaluation" in err
    code, _, err = models("compare", "3", "1", "--agent", AGENT)
    assert code == 1 and err.strip() == f"error: agent {AGENT!r} v3 has no evaluation"
    assert registry.aliases(AGENT)[CHAMPION] == 1  # refusals moved nothing
    history = [(e.action, e.to_version, e.by) for e in registry.history(AGENT)]
    assert [h for h in history if h[0] != "challenger"] == [
        ("promote", 1, "alice"),
        ("promote", 2, "bob"),
        ("rollback", 1, "carol"),
    ]


def test_readiness_report_asset_writes_markdown_and_html(
    two_versions: AgentModelRegistry, home: Path
) -> None:
    two_versions.promote(AGENT, 1, by="test")
    result = dg.materialize(
        [readiness_report],
        resources={
            "evaluation": EvaluationResource(),
            "model_registry": LocalModelRegistryResource(home=str(home)),
        },
        run_config={"ops": {"readiness_report": {"config": {"run_tools": False}}}},
    )
    meta = result.asset_materializations_for_node("readiness_report")[0].metadata
    markdown = meta["report"].value
    assert markdown.startswith(f"# Readiness of `{AGENT}` champion v1: NOT READY")
    assert "| Backups are fresh | pass | automatic |" in markdown
    assert (  # nobody signed it off, so the champion is not ready
        "| Security review of the architecture | missing | sign-off | no sign-off: "
        "`agent-platform readiness signoff architecture.security_review --by NAME` |"
    ) in markdown
    assert meta["ready"].value is False and meta["champion_version"].value == 1
    html = Path(meta["html"].value)
    assert html == home / "readiness" / "readiness.html"
    text = html.read_text()
    assert text.startswith("<!doctype html>") and "data:image/png;base64," in text
    run = two_versions.client.get_run(meta["mlflow_run_id"].value)
    assert run.data.tags["kind"] == "readiness" and run.data.metrics["ready"] == 0.0
