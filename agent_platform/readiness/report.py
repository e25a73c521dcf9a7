"""The readiness report of an agent's champion: the checklist, rendered as Markdown (Dagster
metadata, the CLI) and HTML with plots (gates per candidate against their thresholds, the latency
distribution), written under `<home>/readiness/` and logged as MLflow artifacts.

The first screen is the verdict, why (no champion: which gate the best candidate fails) and the
open items, failing gates first; the full checklist follows."""

from __future__ import annotations

import html
import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from agent_platform.evaluation.candidates import PROJECT_ROOT, EvaluationPlan
from agent_platform.evaluation.dataset import dataset_version
from agent_platform.evaluation.gates import GateThresholds
from agent_platform.model_registry import AgentModelRegistry, AgentVersion
from agent_platform.readiness import links
from agent_platform.readiness.checklist import ChecklistInputs, evaluate_checklist
from agent_platform.readiness.gates import SECTION, no_champion_reason
from agent_platform.readiness.item import Item
from agent_platform.readiness.plots import CandidatePoint, gates_figure, latency_figure
from agent_platform.settings import Settings

SYMBOL = {
    "pass": "✅",  # nosec B105  # a status symbol, not a password
    "signed": "✍️",
    "fail": "❌",
    "unverified": "❔",
    "missing": "⚠️",
    "error": "⛔",
}
LABEL = {"unverified": "not verified"}
# open items first by how bad: a failed gate, a failed check, unverifiable, no evidence yet
_URGENCY = {"fail": 1, "error": 2, "unverified": 3, "missing": 4}


def _label(status: str) -> str:
    return LABEL.get(status, status)


@dataclass
class ReadinessReport:
    agent: str
    champion: int | None
    generated_at: str
    items: list[Item]
    why: str = ""  # why there is no champion ("" when there is one)
    measured: str = ""  # what the gate items measure: "champion v3 (extractive)"
    candidates: list[CandidatePoint] = field(default_factory=list)
    gates: GateThresholds = field(default_factory=GateThresholds)
    latencies_ms: list[float] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    mlflow_run_id: str = ""

    @property
    def ready(self) -> bool:
        return self.champion is not None and all(i.ok for i in self.items)

    def blockers(self) -> list[Item]:
        """Open items, failing quality gates first, then by how bad the status is."""
        open_items = [i for i in self.items if not i.ok]
        return sorted(
            open_items,
            key=lambda i: (i.section != SECTION, _URGENCY.get(i.status, 5)),
        )

    def listed_blockers(self) -> list[Item]:
        """The open items the first screen lists (the champion item is the "why" line)."""
        return [i for i in self.blockers() if not (self.why and i.key == f"{SECTION}.champion")]

    @property
    def title(self) -> str:
        subject = f"champion v{self.champion}" if self.champion is not None else "no champion"
        if self.ready:
            return f"Readiness of `{self.agent}` {subject}: READY"
        return f"Readiness of `{self.agent}` {subject}: NOT READY ({len(self.blockers())} open)"

    def as_json(self) -> dict[str, object]:
        return {
            "agent": self.agent,
            "champion": self.champion,
            "ready": self.ready,
            "why": self.why,
            "measured": self.measured,
            "generated_at": self.generated_at,
            "items": [asdict(i) for i in self.items],
            "candidates": [asdict(c) for c in self.candidates],
            "links": self.links,
            "paths": self.paths,
            "mlflow_run_id": self.mlflow_run_id,
        }

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        if self.why:
            lines += [f"**Why no champion:** {self.why}", ""]
        if self.links:
            lines += [" · ".join(f"[{name}]({url})" for name, url in self.links.items()), ""]
        shown = self.listed_blockers()
        if shown:
            lines.append("**Open items:**")
            lines += [
                f"- {SYMBOL.get(i.status, '')} **{i.title}** ({_label(i.status)}): {i.detail}"
                for i in shown
            ]
            lines.append("")
        lines += [
            f"Gates measured on the {self.measured or 'no evaluated version'}. "
            f"Generated {self.generated_at}.",
            "",
        ]
        section = ""
        for item in self.items:
            if item.section != section:
                section = item.section
                lines += [
                    "",
                    f"## {section.replace('_', ' ').title()}",
                    "",
                    "| | item | status | how | detail |",
                    "|---|---|---|---|---|",
                ]
            how = "automatic" if item.automatic else "sign-off"
            detail = item.detail.replace("|", "\\|").replace("\n", " ")
            lines.append(
                f"| {SYMBOL.get(item.status, '')} | {item.title} | {_label(item.status)} | {how} "
                f"| {detail} |"
            )
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        plots = [
            ("Quality and latency gates per candidate", gates_figure(self.candidates, self.gates)),
            (
                f"Latency distribution of the {self.measured}",
                latency_figure(self.latencies_ms, self.measured, self.gates.latency_p95_ms),
            ),
        ]
        figures = "".join(
            f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{p}"/>'
            f"<figcaption>{html.escape(t)}</figcaption></figure>"
            for t, p in plots
            if p
        )
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title>"
            "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 1em}"
            "td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
            "table{border-collapse:collapse;width:100%}img{max-width:100%}"
            ".fail,.missing,.error,.unverified{background:#fee}.pass,.signed{background:#efe}"
            ".verdict{font-size:1.2em}</style></head><body>"
            + _html_body(self)
            + figures
            + _html_table(self)
            + "</body></html>"
        )


def _html_body(report: ReadinessReport) -> str:
    e = html.escape
    parts = [f"<h1>{e(report.title.replace('`', ''))}</h1>"]
    if report.why:
        parts.append(f"<p class='verdict'><b>Why no champion:</b> {e(report.why)}</p>")
    if report.links:
        anchors = " · ".join(
            f"<a href='{e(url, quote=True)}'>{e(name)}</a>" for name, url in report.links.items()
        )
        parts.append(f"<p>{anchors}</p>")
    shown = report.listed_blockers()
    if shown:
        parts.append("<h2>Open items</h2><ul>")
        parts += [
            f"<li class='{i.status}'>{SYMBOL.get(i.status, '')} <b>{e(i.title)}</b> "
            f"({e(_label(i.status))}): {e(i.detail)}</li>"
            for i in shown
        ]
        parts.append("</ul>")
    parts.append(
        f"<p>Gates measured on the {e(report.measured or 'no evaluated version')}. "
        f"Generated {e(report.generated_at)}.</p>"
    )
    return "".join(parts)


def _html_table(report: ReadinessReport) -> str:
    parts = [
        "<h2>Checklist</h2><table><tr><th>section</th><th>item</th><th>status</th>"
        "<th>detail</th></tr>"
    ]
    for i in report.items:
        parts.append(
            f"<tr class='{i.status}'><td>{html.escape(i.section)}</td><td>{html.escape(i.title)}"
            f"</td><td>{html.escape(_label(i.status))}</td><td>{html.escape(i.detail)}</td></tr>"
        )
    return "".join(parts) + "</table>"


def _latencies(registry: AgentModelRegistry, champion: AgentVersion | None) -> list[float]:
    run_id = champion.tags.get("eval.run_id") if champion else None
    if not run_id:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        path = registry.client.download_artifacts(run_id, "eval/summary.json", tmp)
        values = json.loads(Path(path).read_text()).get("latencies_ms", [])
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def _candidates(
    versions: list[AgentVersion], champion: AgentVersion | None
) -> list[CandidatePoint]:
    """The latest evaluated version of each candidate, and the champion (oldest first)."""
    latest: dict[str, AgentVersion] = {}
    for version in versions:
        if version.evaluated:
            latest[version.candidate or f"v{version.version}"] = version
    chosen = {v.version: v for v in latest.values()}
    if champion is not None and champion.evaluated:
        chosen[champion.version] = champion
    points = []
    for number in sorted(chosen):
        version = chosen[number]
        name = f"v{number} {version.candidate}".strip()
        role = " (champion)" if champion is not None and number == champion.version else ""
        points.append(CandidatePoint(name + role, version.metrics))
    return points


def build_report(
    settings: Settings,
    plan: EvaluationPlan,
    registry: AgentModelRegistry,
    *,
    project_root: Path = PROJECT_ROOT,
    run_tools: bool = True,
    junit_path: Path | None = None,
    dagster_run_id: str | None = None,
    ui: links.UiSettings | None = None,
) -> ReadinessReport:
    """Evaluate the checklist for the plan's agent and gather the plots' data and the links
    (`dagster_run_id`: the Dagster run writing the report, when one is)."""
    ui = ui or links.UiSettings()
    champion = registry.champion(plan.agent)
    versions = registry.versions(plan.agent) if plan.agent in registry.names() else []
    inputs = ChecklistInputs(
        settings,
        project_root,
        plan.tenant,
        champion,
        plan.gates,
        dataset_version(plan.dataset_path),
        run_tools,
        junit_path,
        versions,
        plan.agent,
    )
    best = inputs.subject
    found: dict[str, str] = {}
    if best is not None:
        label = f"MLflow {best.role} v{best.version.version}"
        found[label] = links.mlflow_model_version(ui, plan.agent, best.version.version)
        run_id = best.version.tags.get("eval.run_id")
        if run_id:
            experiment = registry.client.get_run(run_id).info.experiment_id
            found["MLflow evaluation run"] = links.mlflow_run(ui, experiment, run_id)
    if dagster_run_id:
        found["Dagster run"] = links.dagster_run(ui, dagster_run_id)
    return ReadinessReport(
        agent=plan.agent,
        champion=champion.version if champion else None,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        items=evaluate_checklist(inputs),
        why="" if champion is not None else no_champion_reason(best, plan.agent),
        measured=best.label if best else "",
        candidates=_candidates(versions, champion),
        gates=plan.gates,
        latencies_ms=_latencies(registry, best.version if best else None),
        links=found,
    )


def write_report(
    report: ReadinessReport,
    settings: Settings,
    registry: AgentModelRegistry,
    *,
    ui: links.UiSettings | None = None,
) -> ReadinessReport:
    """Write Markdown, HTML and JSON under `<home>/readiness/` and log them to an MLflow run of
    the agent's experiment (linked from the report)."""
    directory = settings.home_dir / "readiness"
    directory.mkdir(parents=True, exist_ok=True)
    files = {"markdown": "readiness.md", "html": "readiness.html", "json": "readiness.json"}
    report.paths = {kind: str(directory / name) for kind, name in files.items()}
    client = registry.client
    experiment = registry.reports_experiment_id(report.agent)
    run = client.create_run(
        experiment,
        run_name="readiness report",
        tags={"kind": "readiness", "champion": str(report.champion or "none")},
    )
    report.mlflow_run_id = run.info.run_id
    report.links["MLflow readiness run"] = links.mlflow_run(
        ui or links.UiSettings(), experiment, run.info.run_id
    )
    (directory / files["markdown"]).write_text(report.markdown(), encoding="utf-8")
    (directory / files["html"]).write_text(report.html(), encoding="utf-8")
    (directory / files["json"]).write_text(json.dumps(report.as_json(), indent=2), encoding="utf-8")
    for name in files.values():
        client.log_artifact(run.info.run_id, str(directory / name), "readiness")
    client.log_metric(run.info.run_id, "ready", float(report.ready))
    client.log_metric(run.info.run_id, "open_items", float(len(report.blockers())))
    client.set_terminated(run.info.run_id)
    return report
