"""Quality gates that block promotion; thresholds are configuration, the spec's numbers defaults.

Sources, highest first: keyword arguments, `AGENT_PLATFORM_GATES_*` environment variables, the
`[gates]` table of `evaluation/agents.toml`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GateThresholds(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENT_PLATFORM_GATES_", extra="forbid")

    accuracy: float = Field(default=0.95, ge=0, le=1)
    consistency: float = Field(default=0.90, ge=0, le=1)
    compliance: float = Field(default=1.0, ge=0, le=1)
    latency_p95_ms: float = Field(default=2000.0, gt=0, description="The latency budget.")


@dataclass(frozen=True)
class GateResult:
    name: str
    metric: str
    value: float
    threshold: float
    passed: bool
    comparison: str

    @property
    def message(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        value = "missing" if math.isnan(self.value) else f"{self.value:.4g}"
        bound = f"{self.comparison} {self.threshold:g}"
        return f"{self.name} {verdict}: {self.metric} = {value} (must be {bound})"

    @property
    def shortfall(self) -> str:
        """`accuracy 0.879 < 0.95`: why a failed gate failed, short enough for a verdict line."""
        if math.isnan(self.value):
            return f"{self.metric} missing"
        broken = "<" if self.comparison == ">=" else ">"
        value = f"{self.value:.3g}" if abs(self.value) < 100 else f"{self.value:.0f}"
        return f"{self.metric} {value} {broken} {self.threshold:g}"


GATES: tuple[tuple[str, str, str], ...] = (
    ("accuracy", "accuracy", ">="),
    ("consistency", "consistency", ">="),
    ("compliance", "compliance", ">="),
    ("latency", "latency_p95_ms", "<="),
)


def evaluate_gates(metrics: Mapping[str, float], thresholds: GateThresholds) -> list[GateResult]:
    """One result per gate; a missing or NaN metric fails its gate."""
    results = []
    for name, metric, comparison in GATES:
        threshold = float(getattr(thresholds, metric if name != "latency" else "latency_p95_ms"))
        value = float(metrics.get(metric, math.nan))
        if math.isnan(value):
            passed = False
        elif comparison == ">=":
            passed = value >= threshold
        else:
            passed = value <= threshold
        results.append(GateResult(name, metric, value, threshold, passed, comparison))
    return results


def all_passed(results: list[GateResult]) -> bool:
    return bool(results) and all(r.passed for r in results)
