"""Per-model performance, tracked as exponential moving averages, for the intelligent router.

An EMA weighs recent calls most (weight `alpha` on the newest observation), so a model that slows
down or starts failing loses traffic within a few calls, and recovers as soon as it behaves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ModelPerformance:
    """What is known about one model. EMAs are None until a first observation."""

    model: str
    calls: int = 0
    failures: int = 0
    latency_ms: float | None = None
    error_rate: float | None = None
    output_tokens: float | None = None  # per call; cost is priced from it and the prompt
    quality: float | None = None
    quality_samples: int = 0


def _ema(previous: float | None, value: float, alpha: float) -> float:
    return value if previous is None else alpha * value + (1 - alpha) * previous


class PerformanceTracker:
    """Thread-safe EMAs of latency, error rate, output tokens and quality, by model."""

    def __init__(self, alpha: float = 0.2) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self._stats: dict[str, ModelPerformance] = {}
        self._lock = threading.Lock()

    def _current(self, model: str) -> ModelPerformance:
        return self._stats.get(model) or ModelPerformance(model=model)

    def record_success(self, model: str, latency_s: float, output_tokens: int) -> None:
        a = self.alpha
        with self._lock:
            s = self._current(model)
            self._stats[model] = replace(
                s,
                calls=s.calls + 1,
                latency_ms=_ema(s.latency_ms, latency_s * 1000.0, a),
                error_rate=_ema(s.error_rate, 0.0, a),
                output_tokens=_ema(s.output_tokens, float(output_tokens), a),
            )

    def record_failure(self, model: str, latency_s: float) -> None:
        a = self.alpha
        with self._lock:
            s = self._current(model)
            self._stats[model] = replace(
                s,
                calls=s.calls + 1,
                failures=s.failures + 1,
                latency_ms=_ema(s.latency_ms, latency_s * 1000.0, a),
                error_rate=_ema(s.error_rate, 1.0, a),
            )

    def record_quality(self, model: str, score: float) -> None:
        """A quality score in [0, 1] (from an evaluator or user feedback)."""
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {score}")
        with self._lock:
            s = self._current(model)
            self._stats[model] = replace(
                s, quality=_ema(s.quality, score, self.alpha), quality_samples=s.quality_samples + 1
            )

    def get(self, model: str) -> ModelPerformance:
        with self._lock:
            return self._current(model)

    def snapshot(self) -> dict[str, ModelPerformance]:
        with self._lock:
            return dict(self._stats)
