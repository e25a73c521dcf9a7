"""Adaptive trace sampling: every error and every slow request kept, the rest sampled by traffic.

A head sampler decides when a trace starts, before anyone knows whether it will fail or be slow,
so the spec's "keep every error and every slow request" cannot be a `Sampler`. This is a span
processor in front of the exporting one: it holds the spans of a trace until the trace's local
root ends (the request is over), then forwards all of them or none. The decision, in order:

1. any span of the trace has status ERROR -> keep (`error`);
2. the root lasted at least `latency_threshold_ms` -> keep (`slow`);
3. otherwise keep with probability `rate`, where `rate = target_traces_per_second / traffic`
   clamped to [`base_rate`, `max_rate`]: at low traffic every trace is kept, at high traffic the
   kept volume stays near the target and never falls below the base rate. The draw is on the
   trace id (as `TraceIdRatioBased` does), so processes with the same rate agree on a trace.

Memory is bounded: at most `max_pending_traces` unfinished traces are held (the oldest is then
decided on what it has), and spans that end after their root follow the root's decision (so in a
trace with several local roots, the first to end decides).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from agent_platform.runtime.config import SamplingSettings

Reason = Literal["error", "slow", "rate", "dropped"]
_TRACE_ID_LOW_BITS = (1 << 64) - 1
_DECIDED_MEMORY = 10_000


class TrafficRate:
    """Traces per second as an exponentially weighted moving rate (O(1) per event): after a quiet
    spell it decays toward zero, so the sampler opens up again. Until a full window has passed the
    weight is divided by the window's elapsed part only (a bias correction), so a burst right
    after start is seen at its real rate rather than at a fraction of it."""

    def __init__(self, window_s: float, clock: Callable[[], float]) -> None:
        self.window_s = window_s
        self._clock = clock
        self._weight = 0.0
        self._started = self._last = clock()

    def _decay(self, now: float) -> None:
        self._weight *= math.exp(-max(0.0, now - self._last) / self.window_s)
        self._last = now

    def observe(self) -> None:
        self._decay(self._clock())
        self._weight += 1.0

    def per_second(self) -> float:
        now = self._clock()
        self._decay(now)
        elapsed = max(now - self._started, min(1.0, self.window_s))
        return self._weight / (self.window_s * -math.expm1(-elapsed / self.window_s))


@dataclass
class _Pending:
    spans: list[ReadableSpan] = field(default_factory=list)
    error: bool = False


class AdaptiveSamplingProcessor(SpanProcessor):
    """Forwards whole traces to `delegate` (the exporting processor) by the rules above."""

    def __init__(
        self,
        delegate: SpanProcessor,
        settings: SamplingSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_decision: Callable[[Reason], None] | None = None,
    ) -> None:
        """`on_decision` hears each trace's decision (a metrics counter), under the lock."""
        self.delegate = delegate
        self._on_decision = on_decision
        self.settings = settings
        self.traffic = TrafficRate(settings.traffic_window_s, clock)
        self.kept: dict[Reason, int] = {"error": 0, "slow": 0, "rate": 0, "dropped": 0}
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._decided: OrderedDict[int, bool] = OrderedDict()
        self._lock = threading.Lock()

    def rate(self) -> float:
        """The probability a fast, successful trace is kept now."""
        with self._lock:
            return self._rate()

    def _rate(self) -> float:
        cfg = self.settings
        traffic = self.traffic.per_second()
        if traffic <= cfg.target_traces_per_second:
            return cfg.max_rate
        return min(cfg.max_rate, max(cfg.base_rate, cfg.target_traces_per_second / traffic))

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.delegate.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        trace_id = context.trace_id
        release: list[ReadableSpan] = []
        with self._lock:
            if trace_id in self._decided:  # a span that ended after its root
                if self._decided[trace_id]:
                    release.append(span)
            else:
                pending = self._pending.setdefault(trace_id, _Pending())
                pending.spans.append(span)
                pending.error |= span.status.status_code is StatusCode.ERROR
                if span.parent is None or span.parent.is_remote:
                    release += self._decide(trace_id, _duration_ms(span))
                elif len(self._pending) > self.settings.max_pending_traces:
                    oldest = next(iter(self._pending))
                    release += self._decide(oldest, None)
        for finished in release:
            self.delegate.on_end(finished)

    def _decide(self, trace_id: int, root_ms: float | None) -> list[ReadableSpan]:
        """Settle one trace (under the lock); returns the spans to forward."""
        pending = self._pending.pop(trace_id)
        if root_ms is not None:
            self.traffic.observe()
        reason: Reason
        if pending.error:
            reason = "error"
        elif root_ms is not None and root_ms >= self.settings.latency_threshold_ms:
            reason = "slow"
        elif (trace_id & _TRACE_ID_LOW_BITS) < round(self._rate() * (_TRACE_ID_LOW_BITS + 1)):
            reason = "rate"
        else:
            reason = "dropped"
        self.kept[reason] += 1
        if self._on_decision is not None:
            self._on_decision(reason)
        keep = reason != "dropped"
        self._decided[trace_id] = keep
        while len(self._decided) > _DECIDED_MEMORY:
            self._decided.popitem(last=False)
        return pending.spans if keep else []

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flushes what was decided; traces whose root is still running stay pending."""
        return self.delegate.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Settles the traces still pending on what they have, then shuts the delegate down."""
        release: list[ReadableSpan] = []
        with self._lock:
            for trace_id in list(self._pending):
                release += self._decide(trace_id, None)
        for span in release:
            self.delegate.on_end(span)
        self.delegate.shutdown()


def _duration_ms(span: ReadableSpan) -> float:
    if span.start_time is None or span.end_time is None:
        return 0.0
    return (span.end_time - span.start_time) / 1e6
