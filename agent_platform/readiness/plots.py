"""The readiness report's plots, readable at a glance: each candidate's gate metrics as bars
against the gate thresholds (candidates are different agents, not points of a trend, so no line
joins them), and the latency distribution of the measured version against the budget."""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent_platform.evaluation.gates import GateThresholds

QUALITY_GATES = ("accuracy", "consistency", "compliance")
PASS_COLOUR, FAIL_COLOUR, LINE_COLOUR = "#3a7d44", "#c0392b", "#222222"


@dataclass(frozen=True)
class CandidatePoint:
    """One evaluated version as the plots show it."""

    label: str  # "v2 extractive (champion)"
    metrics: dict[str, float]


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    plt.rcParams.update({"font.size": 12, "axes.titlesize": 14, "axes.labelsize": 12})
    return plt


def gates_figure(candidates: list[CandidatePoint], gates: GateThresholds) -> str | None:
    """Bars per candidate for each quality gate, and p95 latency per candidate, each against its
    threshold line; a bar is green when it meets its gate, red when not. Base64 PNG."""
    if not candidates:
        return None
    plt = _pyplot()
    from matplotlib.patches import Patch

    fig, (quality, latency) = plt.subplots(
        1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 1.4]}
    )
    width = 0.8 / len(candidates)
    hatches = ["", "//", "..", "xx", "\\\\", "oo"]
    for i, cand in enumerate(candidates):
        xs = np.arange(len(QUALITY_GATES)) + (i - (len(candidates) - 1) / 2) * width
        values = [cand.metrics.get(g, math.nan) for g in QUALITY_GATES]
        colours = [
            PASS_COLOUR if v >= getattr(gates, g) else FAIL_COLOUR
            for v, g in zip(values, QUALITY_GATES, strict=True)
        ]
        bars = quality.bar(
            xs,
            [0 if math.isnan(v) else v for v in values],
            width * 0.92,
            color=colours,
            hatch=hatches[i % len(hatches)],
            edgecolor="white",
        )
        for bar, value in zip(bars, values, strict=True):
            text = "n/a" if math.isnan(value) else f"{value:.2f}"
            quality.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=10,
            )
    for j, gate in enumerate(QUALITY_GATES):
        threshold = getattr(gates, gate)
        quality.hlines(
            threshold, j - 0.45, j + 0.45, colors=LINE_COLOUR, linestyles="--", lw=2, zorder=3
        )
    ticks = [f"{g.title()}\n(gate ≥ {getattr(gates, g):g})" for g in QUALITY_GATES]
    quality.set_xticks(range(len(QUALITY_GATES)), ticks)
    quality.set_ylim(0, 1.12)
    quality.set_ylabel("score on the evaluation dataset (0–1)")
    quality.set_title("Quality gates per candidate (dashed line: threshold)")
    handles = [
        Patch(facecolor="white", edgecolor="#444", hatch=hatches[i % len(hatches)], label=c.label)
        for i, c in enumerate(candidates)
    ] + [
        Patch(color=PASS_COLOUR, label="meets its gate"),
        Patch(color=FAIL_COLOUR, label="fails its gate"),
    ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 6),
        fontsize=11,
        frameon=False,
        bbox_to_anchor=(0.5, -0.02),
    )

    p95 = [c.metrics.get("latency_p95_ms", math.nan) for c in candidates]
    ys = np.arange(len(candidates))
    latency.barh(
        ys,
        [0 if math.isnan(v) else v for v in p95],
        color=[PASS_COLOUR if v <= gates.latency_p95_ms else FAIL_COLOUR for v in p95],
    )
    for y, value in zip(ys, p95, strict=True):
        at = 0 if math.isnan(value) else value
        text = "n/a" if math.isnan(value) else f" {value:.0f} ms"
        latency.annotate(text, (at, y), va="center", fontsize=10)
    latency.axvline(gates.latency_p95_ms, color=LINE_COLOUR, linestyle="--", lw=2)
    latency.set_yticks(ys, [c.label for c in candidates])
    latency.invert_yaxis()
    finite = [v for v in p95 if not math.isnan(v)]
    latency.set_xlim(0, max([gates.latency_p95_ms, *finite]) * 1.35)
    latency.set_xlabel("p95 latency (ms)")
    latency.set_title(f"p95 latency gate (dashed: ≤ {gates.latency_p95_ms:g} ms)")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    encoded = _png(fig)
    plt.close(fig)
    return encoded


def latency_figure(latencies_ms: list[float], label: str, budget_ms: float) -> str | None:
    """Histogram of per-request latency of one version, with its p50, p95 and the budget."""
    if not latencies_ms:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(13, 4))
    ax.hist(latencies_ms, bins=min(40, max(10, len(latencies_ms) // 3)), color="#4a6fa5")
    p50, p95 = np.percentile(latencies_ms, [50, 95])
    for value, style, name in ((p50, ":", "p50"), (p95, "-", "p95")):
        ax.axvline(value, color=LINE_COLOUR, linestyle=style, lw=2, label=f"{name} {value:.0f} ms")
    if budget_ms <= max(latencies_ms) * 1.5:
        budget = f"budget {budget_ms:g} ms"
        ax.axvline(budget_ms, color=FAIL_COLOUR, linestyle="--", lw=2, label=budget)
    else:
        ax.set_title(f"(budget {budget_ms:g} ms is off the chart)", loc="right", fontsize=11)
    ax.set_xlabel("latency per request (ms)")
    ax.set_ylabel("requests")
    ax.set_title(f"Latency distribution of {label} ({len(latencies_ms)} requests)", loc="left")
    ax.legend(fontsize=11)
    fig.tight_layout()
    encoded = _png(fig)
    plt.close(fig)
    return encoded
