"""The readiness report of an agent's champion: the checklist, rendered as Markdown (Dagster
metadata, the CLI) and HTML with plots (metric trends across versions, latency distribution),
written under `<home>/readiness/` and logged as MLflow artifacts."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from agent_platform.evaluation.candidates import PROJECT_ROOT, EvaluationPlan
from agent_platform.evaluation.dataset import dataset_version
from agent_platform.model_registry import AgentModelRegistry, AgentVersion
from agent_platform.readiness.checklist import ChecklistInputs, Item, evaluate_checklist
from agent_platform.settings import Settings

TREND_METRICS = ("accuracy", "consistency", "groundedness", "compliance", "recall_at_k")
SYMBOL = {"pass": "✅", "signed": "✍️", "fail": "❌", "missing": "⚠️", "error": "⛔"}


@dataclass
class ReadinessReport:
    agent: str
    champion: int | None
    generated_at: str
    items: list[Item]
    trends: dict[int, dict[str, float]] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    mlflow_run_id: str = ""

    @property
    def ready(self) -> bool:
        return self.champion is not None and all(i.ok for i in self.items)

    def blockers(self) -> list[Item]:
        return [i for i in self.items if not i.ok]

    def as_json(self) -> dict[str, object]:
        return {
            "agent": self.agent,
            "champion": self.champion,
            "ready": self.ready,
            "generated_at": self.generated_at,
            "items": [asdict(i) for i in self.items],
            "paths": self.paths,
            "mlflow_run_id": self.mlflow_run_id,
        }

    def markdown(self) -> str:
        verdict = "READY" if self.ready else f"NOT READY ({len(self.blockers())} open item(s))"
        champion = f"v{self.champion}" if self.champion else "none"
        lines = [
            f"# Readiness of `{self.agent}` champion {champion}: {verdict}",
            "",
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
                f"| {SYMBOL.get(item.status, '')} | {item.title} | {item.status} | {how} "
                f"| {detail} |"
            )
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        body = _markdown_tables_to_html(self)
        plots = "".join(
            f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{p}"/>'
            f"<figcaption>{html.escape(t)}</figcaption></figure>"
            for t, p in _plots(self)
        )
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Readiness</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
            "td,th{border:1px solid #ccc;padding:4px}table{border-collapse:collapse}"
            ".fail,.missing,.error{background:#fee}"
            ".pass,.signed{background:#efe}</style></head><body>" + body + plots + "</body></html>"
        )


def _markdown_tables_to_html(report: ReadinessReport) -> str:
    verdict = "READY" if report.ready else "NOT READY"
    parts = [
        f"<h1>Readiness of {html.escape(report.agent)} champion v{report.champion}: {verdict}</h1>",
        f"<p>Generated {html.escape(report.generated_at)}.</p><table><tr><th>section</th>"
        "<th>item</th><th>status</th><th>detail</th></tr>",
    ]
    for i in report.items:
        parts.append(
            f"<tr class='{i.status}'><td>{html.escape(i.section)}</td><td>{html.escape(i.title)}"
            f"</td><td>{i.status}</td><td>{html.escape(i.detail)}</td></tr>"
        )
    return "".join(parts) + "</table>"


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _plots(report: ReadinessReport) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    plots = []
    if report.trends:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        versions = sorted(report.trends)
        for metric in TREND_METRICS:
            ys = [report.trends[v].get(metric, math.nan) for v in versions]
            ax.plot(versions, ys, marker="o", label=metric)
        ax.set_xlabel("agent model version"), ax.set_ylim(0, 1.05), ax.legend(fontsize=7)
        ax.set_xticks(versions)
        plots.append(("Metric trends across versions", _png(fig)))
        plt.close(fig)
    if report.latencies_ms:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.hist(report.latencies_ms, bins=30)
        ax.set_xlabel("latency per request (ms)"), ax.set_ylabel("requests")
        plots.append((f"Latency distribution of champion v{report.champion}", _png(fig)))
        plt.close(fig)
    return plots


def _latencies(registry: AgentModelRegistry, champion: AgentVersion | None) -> list[float]:
    run_id = champion.tags.get("eval.run_id") if champion else None
    if not run_id:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        path = registry.client.download_artifacts(run_id, "eval/summary.json", tmp)
        values = json.loads(Path(path).read_text()).get("latencies_ms", [])
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def build_report(
    settings: Settings,
    plan: EvaluationPlan,
    registry: AgentModelRegistry,
    *,
    project_root: Path = PROJECT_ROOT,
    run_tools: bool = True,
    junit_path: Path | None = None,
) -> ReadinessReport:
    """Evaluate the checklist for the plan's agent and gather the data of the plots."""
    champion = registry.champion(plan.agent)
    inputs = ChecklistInputs(
        settings,
        project_root,
        plan.tenant,
        champion,
        plan.gates,
        dataset_version(plan.dataset_path),
        run_tools,
        junit_path,
    )
    versions = registry.versions(plan.agent) if plan.agent in registry.names() else []
    return ReadinessReport(
        agent=plan.agent,
        champion=champion.version if champion else None,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        items=evaluate_checklist(inputs),
        trends={v.version: v.metrics for v in versions if v.evaluated},
        latencies_ms=_latencies(registry, champion),
    )


def write_report(
    report: ReadinessReport, settings: Settings, registry: AgentModelRegistry
) -> ReadinessReport:
    """Write Markdown, HTML and JSON under `<home>/readiness/` and log them to MLflow."""
    directory = settings.home_dir / "readiness"
    directory.mkdir(parents=True, exist_ok=True)
    files = {"markdown": "readiness.md", "html": "readiness.html", "json": "readiness.json"}
    report.paths = {kind: str(directory / name) for kind, name in files.items()}
    (directory / files["markdown"]).write_text(report.markdown(), encoding="utf-8")
    (directory / files["html"]).write_text(report.html(), encoding="utf-8")
    client = registry.client
    run = client.create_run(
        registry.reports_experiment_id(report.agent),
        run_name="readiness report",
        tags={"kind": "readiness", "champion": str(report.champion)},
    )
    report.mlflow_run_id = run.info.run_id
    (directory / files["json"]).write_text(json.dumps(report.as_json(), indent=2), encoding="utf-8")
    for name in files.values():
        client.log_artifact(run.info.run_id, str(directory / name), "readiness")
    client.log_metric(run.info.run_id, "ready", float(report.ready))
    client.log_metric(run.info.run_id, "open_items", float(len(report.blockers())))
    client.set_terminated(run.info.run_id)
    return report
