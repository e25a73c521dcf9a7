"""A/B comparison of two evaluations on the same examples: a paired bootstrap on the difference.

Pairing by example removes the variance of question difficulty, which dominates on small datasets.
"Better" means the whole 95% interval of (challenger - champion) lies above zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

Verdict = Literal["better", "worse", "inconclusive"]


class ComparisonError(ValueError):
    """The two evaluations cannot be paired."""


@dataclass(frozen=True)
class Comparison:
    metric: str
    examples: int
    challenger_mean: float
    champion_mean: float
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int
    seed: int

    @property
    def verdict(self) -> Verdict:
        if self.ci_low > 0:
            return "better"
        if self.ci_high < 0:
            return "worse"
        return "inconclusive"

    def summary(self) -> str:
        level = round(self.confidence * 100)
        return (
            f"{self.metric}: challenger {self.challenger_mean:.3f} vs champion "
            f"{self.champion_mean:.3f}, difference {self.difference:+.3f} "
            f"({level}% CI [{self.ci_low:+.3f}, {self.ci_high:+.3f}], n={self.examples}): "
            f"{self.verdict}"
        )


def paired_bootstrap(
    challenger: Mapping[str, float],
    champion: Mapping[str, float],
    *,
    metric: str = "correct",
    resamples: int = 5000,
    confidence: float = 0.95,
    seed: int = 20240601,
) -> Comparison:
    """Percentile bootstrap CI of mean(challenger - champion) over the shared example ids."""
    shared = sorted(set(challenger) & set(champion))
    if not shared:
        raise ComparisonError(
            f"no shared examples to compare on {metric!r} "
            f"(challenger has {len(challenger)}, champion has {len(champion)})"
        )
    a = np.array([challenger[i] for i in shared], dtype=float)
    b = np.array([champion[i] for i in shared], dtype=float)
    diff = a - b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Comparison(
        metric=metric,
        examples=len(shared),
        challenger_mean=float(a.mean()),
        champion_mean=float(b.mean()),
        difference=float(diff.mean()),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        resamples=resamples,
        seed=seed,
    )
