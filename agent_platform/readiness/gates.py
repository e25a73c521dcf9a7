"""The quality-gate items of the readiness report: one item per gate, measured on the champion or,
when there is none, on the best evaluated candidate, so the report says why there is no champion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from agent_platform.evaluation.gates import GATES, GateResult, GateThresholds, evaluate_gates
from agent_platform.model_registry import AgentVersion
from agent_platform.readiness.item import Item

SECTION = "quality_gates"


@dataclass(frozen=True)
class Subject:
    """The version the gate items measure, and why that one."""

    version: AgentVersion
    role: str  # "champion" | "best candidate"
    results: list[GateResult]

    @property
    def label(self) -> str:
        candidate = f" ({self.version.candidate})" if self.version.candidate else ""
        return f"{self.role} v{self.version.version}{candidate}"

    @property
    def failing(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]


def short(result: GateResult) -> str:
    """`accuracy 0.879 < 0.95` (failing) or `accuracy 0.96 >= 0.95` (passing)."""
    if math.isnan(result.value):
        return f"{result.metric} not measured"
    shown = f"{result.value:.0f} ms" if result.name == "latency" else f"{result.value:.3g}"
    bound = f"{result.threshold:g} ms" if result.name == "latency" else f"{result.threshold:g}"
    if result.passed:
        return f"{result.metric} {shown} {result.comparison} {bound}"
    opposite = {">=": "<", "<=": ">"}[result.comparison]
    return f"{result.metric} {shown} {opposite} {bound}"


def subject(
    champion: AgentVersion | None, versions: Sequence[AgentVersion], gates: GateThresholds
) -> Subject | None:
    """The evaluated champion, else the evaluated version passing most gates (then the most
    accurate, then the newest); None when no version has been evaluated."""
    if champion is not None and champion.evaluated:
        return Subject(champion, "champion", evaluate_gates(champion.metrics, gates))
    scored = [(v, evaluate_gates(v.metrics, gates)) for v in versions if v.evaluated]
    if not scored:
        return None

    def rank(pair: tuple[AgentVersion, list[GateResult]]) -> tuple[int, float, int]:
        version, results = pair
        accuracy = version.metrics.get("accuracy", math.nan)
        return (
            sum(r.passed for r in results),
            -1.0 if math.isnan(accuracy) else accuracy,
            version.version,
        )

    version, results = max(scored, key=rank)
    return Subject(version, "best candidate", results)


def no_champion_reason(best: Subject | None, agent: str) -> str:
    """Why `agent` has no champion, in one line a person can act on."""
    if best is None:
        return (
            f"no version of {agent!r} has been evaluated: run the evaluation "
            "(`agent-platform models evaluate`)"
        )
    if best.failing:
        failing = ", ".join(short(r) for r in best.failing)
        return f"no version passes the quality gates; the {best.label} fails {failing}"
    return (
        f"the {best.label} passes every gate but was not promoted: "
        f"`agent-platform models promote {best.version.version} --agent {agent}`"
    )


def gate_items(
    champion: AgentVersion | None, best: Subject | None, *, agent: str, dataset: str
) -> list[Item]:
    """A champion item saying why there is none, then one item per gate on the champion or the
    best evaluated candidate, with its measured value against the threshold."""
    if champion is not None and champion.evaluated:
        head = Item(SECTION, f"{SECTION}.champion", "Champion", "pass", f"v{champion.version}")
    elif champion is not None:
        head = Item(
            SECTION,
            f"{SECTION}.champion",
            "Champion",
            "missing",
            f"champion v{champion.version} has no evaluation: run `agent-platform models evaluate`",
        )
    else:
        reason = no_champion_reason(best, agent)
        status = "missing" if best is None else "fail"  # nothing evaluated vs. gates failed
        head = Item(SECTION, f"{SECTION}.champion", "Champion", status, f"no champion: {reason}")
    if best is None:
        return [head] + [
            Item(
                SECTION,
                f"{SECTION}.{name}",
                f"Gate: {name}",
                "missing",
                "no evaluated version to measure",
            )
            for name, _, _ in GATES
        ]
    tags = best.version.tags
    stale = tags.get("eval.dataset_version") != dataset
    items = [
        head,
        Item(
            SECTION,
            f"{SECTION}.dataset",
            "Evaluated on the current dataset",
            "fail" if stale else "pass",
            f"{best.label} evaluated on dataset {tags.get('eval.dataset_version')}, "
            f"current {dataset}",
        ),
    ]
    for gate in best.results:
        value = None if math.isnan(gate.value) else gate.value
        items.append(
            Item(
                SECTION,
                f"{SECTION}.{gate.name}",
                f"Gate: {gate.name}",
                "pass" if gate.passed else "fail",
                f"{best.label}: {short(gate)}",
                True,
                {
                    "value": value,
                    "threshold": gate.threshold,
                    "comparison": gate.comparison,
                    "version": best.version.version,
                    "role": best.role,
                },
            )
        )
    return items
