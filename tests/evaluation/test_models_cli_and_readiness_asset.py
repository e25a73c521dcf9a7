"""`agent-platform models promote|rollback|compare` against a real local MLflow store, and the
`readiness_report` asset materialized with Dagster."""

import base64
import dataclasses
import json
import re
import struct
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from agent_platform.cli.models import models_app
from agent_platform.evaluation import EvaluationService, load_dataset, load_plan
from agent_platform.evaluation.gates import GateThresholds
from agent_platform.model_registry import CHAMPION, AgentModelRegistry, build_lineage
from agent_platform.readiness import build_report, write_report
from agent_platform.security.operator import AS_ENV
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

    def models(*args: str, who: str = "dave") -> tuple[int, str, str]:
        # the root command's `--as NAME` (a local, unverified identity) reaches subcommands so
        result = cli.invoke(models_app, list(args), env={AS_ENV: who})
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = models("promote", "1", "--agent", AGENT, "--reason", "first", who="alice")
    assert code == 0 and "promote champion v- -> v1 by alice (first)" in out
    code, out, _ = models("promote", "2", "--agent", AGENT, who="bob")
    assert code == 0 and "v1 -> v2 by bob" in out
    assert registry.aliases(AGENT)[CHAMPION] == 2
    code, out, _ = models("rollback", AGENT, who="carol")
    assert code == 0 and "rollback champion v2 -> v1 by carol" in out
    code, _, err = models("promote", "2", "--agent", AGENT, "--by", "mallory")
    assert code == 2 and "--by" in err  # who acts comes from the identity, not a free-text flag
    assert registry.aliases(AGENT)[CHAMPION] == 1
    code, out, _ = models("compare", "2", "--agent", AGENT)  # against the champion, v1
    assert code == 0 and out.startswith("v2 vs v1: correct: challenger") and "n=6" in out

    code, out, err = models("promote", "99", "--agent", AGENT)
    assert code == 1 and not out
    assert err.strip() == f"error: agent {AGENT!r} has no version 99 (versions: [1, 2, 3])"
    code, _, err = models("promote", "3", "--agent", AGENT)
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

    code, _, err = models("rollback", AGENT, "--to", "3")  # v3 never served as champion
    assert code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert registry.aliases(AGENT)[CHAMPION] == 1
    code, out, _ = models("history", AGENT)
    shown = out.splitlines()
    assert code == 0 and len(shown) == len(history)
    assert "promote champion v- -> v1 by alice (first)" in shown[0]
    assert "rollback champion v2 -> v1 by carol" in out

    code, out, _ = models("list", AGENT)
    listed = {line.split(" ", 2)[1]: line for line in out.splitlines()}
    assert code == 0 and set(listed) == {"v1", "v2", "v3"}
    assert re.fullmatch(
        rf"{AGENT} v1 \[champion\] extractive: gates pass accuracy \d\.\d{{3}} p95 \d+ ms",
        listed["v1"],
    )
    assert listed["v3"] == f"{AGENT} v3 [-]: not evaluated"  # registered, never evaluated
    code, out, _ = models("list", AGENT, "--json")
    versions = {v["version"]: v for v in json.loads(out)}
    assert code == 0 and set(versions) == {1, 2, 3}
    assert "champion" in versions[1]["aliases"] and versions[3]["evaluated"] is False
    code, out, _ = models("list", "nobody")
    assert code == 0 and out.strip() == (
        "no versions of 'nobody' yet (run `agent-platform models evaluate`)"
    )


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
        "`agent-platform readiness signoff architecture.security_review` (signed in) |"
    ) in markdown
    assert meta["ready"].value is False and meta["champion_version"].value == 1
    html = Path(meta["html"].value)
    assert html == home / "readiness" / "readiness.html"
    text = html.read_text()
    assert text.startswith("<!doctype html>") and "data:image/png;base64," in text
    run = two_versions.client.get_run(meta["mlflow_run_id"].value)
    assert run.data.tags["kind"] == "readiness" and run.data.metrics["ready"] == 0.0
    # links to the Dagster run that wrote it and to the MLflow version, as URL metadata
    assert meta["Dagster run"].value == f"http://127.0.0.1:3000/runs/{result.run_id}"
    assert meta["MLflow champion v1"].value.endswith(f"/#/models/{AGENT}/versions/1")
    assert f"[Dagster run](http://127.0.0.1:3000/runs/{result.run_id})" in markdown


def _pngs(html: str) -> list[bytes]:
    found = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    return [base64.b64decode(p) for p in found]


def test_report_without_champion_says_why_and_measures_the_best_candidate(
    two_versions: AgentModelRegistry, home: Path, tmp_path: Path
) -> None:
    """No champion: each gate is its own item on the best candidate's measured value, the report
    says which gate keeps it from being champion, and the title never reads "vNone"."""
    settings = Settings(home=home)
    strict = GateThresholds(accuracy=0.1, consistency=0.5, compliance=1.0, latency_p95_ms=1.0)
    plan = dataclasses.replace(load_plan(), gates=strict)
    report = write_report(
        build_report(settings, plan, two_versions, run_tools=False, dagster_run_id="run-123"),
        settings,
        two_versions,
    )
    assert report.champion is None and not report.ready
    items = {i.key: i for i in report.items}
    gates = [items[f"quality_gates.{g}"] for g in ("accuracy", "consistency", "compliance")]
    latency = items["quality_gates.latency"]
    best = latency.evidence["version"]
    assert best in (1, 2) and latency.evidence["role"] == "best candidate"
    assert latency.status == "fail" and latency.evidence["threshold"] == 1.0
    p95 = two_versions.get(AGENT, best).metrics["latency_p95_ms"]
    assert latency.evidence["value"] == p95 and f"{p95:.0f} ms > 1 ms" in latency.detail
    for gate in gates:
        assert gate.evidence["version"] == best and gate.evidence["value"] is not None
        assert gate.status == "pass"  # the lenient quality gates hold
    why = items["quality_gates.champion"]
    assert why.status == "fail" and "fails latency_p95_ms" in why.detail
    assert report.why in why.detail

    markdown = Path(report.paths["markdown"]).read_text()
    lines = markdown.splitlines()
    assert lines[0] == f"# Readiness of `{AGENT}` no champion: NOT READY " + (
        f"({len(report.blockers())} open)"
    )
    assert "vNone" not in markdown and "vNone" not in Path(report.paths["html"]).read_text()
    assert lines[2].startswith("**Why no champion:** no version passes the quality gates")
    opened = lines.index("**Open items:**")  # the first screen: verdict, why, links, gates
    assert opened <= 6 and lines[4].startswith(f"[MLflow best candidate v{best}](")
    assert lines[opened + 1].startswith("- ❌ **Gate: latency** (fail): best candidate v")
    assert report.blockers()[0].key == "quality_gates.champion"

    experiment = two_versions.experiment_id(AGENT)
    reports = two_versions.reports_experiment_id(AGENT)
    assert reports != experiment
    eval_run = two_versions.get(AGENT, best).tags["eval.run_id"]
    assert report.links == {
        f"MLflow best candidate v{best}": (
            f"http://127.0.0.1:5000/#/models/{AGENT}/versions/{best}"
        ),
        "MLflow evaluation run": (
            f"http://127.0.0.1:5000/#/experiments/{experiment}/runs/{eval_run}"
        ),
        "Dagster run": "http://127.0.0.1:3000/runs/run-123",
        "MLflow readiness run": (  # readiness runs have an experiment of their own
            f"http://127.0.0.1:5000/#/experiments/{reports}/runs/{report.mlflow_run_id}"
        ),
    }
    html = Path(report.paths["html"]).read_text()
    assert "href='http://127.0.0.1:3000/runs/run-123'" in html
    gates_png, latency_png = _pngs(html)
    for png in (gates_png, latency_png):  # readable: at least 1000 px wide
        assert png.startswith(b"\x89PNG") and struct.unpack(">I", png[16:20])[0] >= 1000
    (tmp_path / "gates.png").write_bytes(gates_png)
    (tmp_path / "latency.png").write_bytes(latency_png)
