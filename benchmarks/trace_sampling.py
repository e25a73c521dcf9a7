"""Adaptive trace sampling benchmark: what share of traces is kept at each traffic level, and what
the sampling processor costs per request.

    .venv/bin/python benchmarks/trace_sampling.py [--traces 20000]

1. Kept share: request traces (a root and two children; 1% failing, 1% slower than the threshold)
   at 1 to 5,000 requests/s of simulated time, with the production defaults (base 0.01, max 1.0,
   10 fast traces/s kept). Reports the share of fast traces kept and that every error and slow
   trace was kept.
2. Cost: wall time per request trace (three spans created and ended) into an in-memory exporter:
   without the processor, through it keeping everything (its own overhead), and sampled with the
   defaults (back-to-back requests, so mostly dropped), interleaved over rounds. Writes
   benchmarks/results/trace_sampling.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, Tracer

from agent_platform.runtime.config import SamplingSettings
from agent_platform.runtime.sampling import AdaptiveSamplingProcessor

REPO = Path(__file__).resolve().parents[1]
MS = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def request(tracer: Tracer, at_ns: int, *, duration_ms: float, error: bool) -> int:
    root = tracer.start_span("invoke_agent", start_time=at_ns)
    parent = trace.set_span_in_context(root)
    for phase in ("agent.retrieve", "agent.execute_model"):
        child = tracer.start_span(phase, context=parent, start_time=at_ns)
        if error and phase == "agent.execute_model":
            child.set_status(Status(StatusCode.ERROR, "model failed"))
        child.end(end_time=at_ns + MS)
    root.end(end_time=at_ns + int(duration_ms * MS))
    return root.get_span_context().trace_id


def kept_share(rps: float, traces: int) -> dict[str, float]:
    clock, exporter = Clock(), InMemorySpanExporter()
    settings = SamplingSettings(enabled=True)
    processor = AdaptiveSamplingProcessor(SimpleSpanProcessor(exporter), settings, clock=clock)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    kinds: dict[int, str] = {}
    for i in range(traces):
        clock.now += 1 / rps
        kind = "error" if i % 100 == 0 else "slow" if i % 100 == 50 else "fast"
        duration = 600.0 if kind == "slow" else 20.0
        kinds[
            request(tracer, int(clock.now * 1e9), duration_ms=duration, error=kind == "error")
        ] = kind
    exported = {span.context.trace_id for span in exporter.get_finished_spans()}
    provider.shutdown()
    share = {
        kind: sum(1 for t, k in kinds.items() if k == kind and t in exported)
        / sum(1 for k in kinds.values() if k == kind)
        for kind in ("fast", "error", "slow")
    }
    return {"requests_per_s": rps, **share, "rate_at_end": processor.rate()}


def cost(rounds: int, per_round: int) -> dict[str, float]:
    def timed(settings: SamplingSettings | None) -> float:
        exporter = InMemorySpanExporter()
        processor = SimpleSpanProcessor(exporter)
        provider = TracerProvider()
        provider.add_span_processor(
            processor if settings is None else AdaptiveSamplingProcessor(processor, settings)
        )
        tracer = provider.get_tracer("bench")
        started = time.perf_counter()
        for _ in range(per_round):
            request(tracer, time.time_ns(), duration_ms=20.0, error=False)
        elapsed = time.perf_counter() - started
        provider.shutdown()
        return elapsed / per_round * 1e6

    keep_all = SamplingSettings(enabled=True, target_traces_per_second=1e9)
    plain, buffered, sampled = [], [], []
    for _ in range(rounds):
        plain.append(timed(None))
        buffered.append(timed(keep_all))
        sampled.append(timed(SamplingSettings(enabled=True)))
    return {
        "plain_us_per_request": median(plain),
        "keep_all_us_per_request": median(buffered),
        "sampled_us_per_request": median(sampled),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    shares = [kept_share(rps, args.traces) for rps in (1, 10, 100, 1000, 5000)]
    for row in shares:
        print(
            f"{row['requests_per_s']:>6.0f} req/s: fast kept {row['fast']:.4f}, "
            f"errors kept {row['error']:.2f}, slow kept {row['slow']:.2f}, "
            f"rate at end {row['rate_at_end']:.4f}"
        )
    costs = cost(args.rounds, 2000)
    print(
        f"per request trace (3 spans): {costs['plain_us_per_request']:.1f} us exporting all, "
        f"{costs['keep_all_us_per_request']:.1f} us through the processor keeping all, "
        f"{costs['sampled_us_per_request']:.1f} us sampled (defaults, back-to-back traffic)"
    )
    out = REPO / "benchmarks" / "results" / "trace_sampling.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "shares": shares,
                "cost": costs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
