"""Adaptive trace sampling, counted by a real OTLP/HTTP receiver on loopback: every error and slow
trace arrives, fast ones arrive at the base rate under load and all of them when traffic is low,
and a trace arrives whole or not at all."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode, Tracer

from agent_platform.runtime.config import SamplingSettings, TelemetrySettings
from agent_platform.runtime.sampling import AdaptiveSamplingProcessor
from agent_platform.runtime.telemetry import Telemetry, build_tracer_provider

MS = 1_000_000  # nanoseconds


class Receiver:
    """An OTLP/HTTP traces endpoint that counts the spans it receives, by trace id."""

    def __init__(self) -> None:
        self.spans: Counter[bytes] = Counter()
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest.FromString(body)
                with owner.lock:
                    for resource in request.resource_spans:
                        for scope in resource.scope_spans:
                            owner.spans.update(span.trace_id for span in scope.spans)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1/traces"

    def received(self, trace_id: int) -> int:
        with self.lock:
            return self.spans[trace_id.to_bytes(16, "big")]

    def clear(self) -> None:
        with self.lock:
            self.spans.clear()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


class Clock:
    """Simulated seconds, so traffic of thousands of requests per second takes no real time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def request(tracer: Tracer, *, at_ns: int, duration_ms: float = 5, error: bool = False) -> int:
    """One request trace: a root span and a model-call child; returns the trace id."""
    root = tracer.start_span("request", start_time=at_ns)
    context = root.get_span_context()
    child = tracer.start_span(
        "chat extractive", context=trace.set_span_in_context(root), start_time=at_ns + MS
    )
    if error:
        child.set_status(Status(StatusCode.ERROR, "model failed"))
    child.end(end_time=at_ns + 2 * MS)
    root.end(end_time=at_ns + int(duration_ms * MS))
    return context.trace_id


@pytest.fixture
def sampled(receiver: Receiver) -> Iterator[tuple[Tracer, AdaptiveSamplingProcessor, Clock]]:
    receiver.clear()
    clock = Clock()
    settings = SamplingSettings(
        enabled=True,
        base_rate=0.01,
        target_traces_per_second=10,
        traffic_window_s=1.0,
        latency_threshold_ms=500,
    )
    exporting = BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.url))
    processor = AdaptiveSamplingProcessor(exporting, settings, clock=clock)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    yield provider.get_tracer("test"), processor, clock
    provider.shutdown()


def test_under_load_errors_and_slow_requests_are_kept_and_the_rest_sampled_at_the_base_rate(
    receiver: Receiver, sampled: tuple[Tracer, AdaptiveSamplingProcessor, Clock]
) -> None:
    tracer, processor, clock = sampled
    for _ in range(3000):  # warm up to 1000 requests/s of simulated time
        clock.now += 0.001
        request(tracer, at_ns=int(clock.now * 1e9))
    assert processor.rate() == pytest.approx(0.01, rel=0.1)
    errors, slow, fast = [], [], []
    for i in range(5000):
        clock.now += 0.001
        at = int(clock.now * 1e9)
        if i % 500 == 0:
            errors.append(request(tracer, at_ns=at, error=True))
        elif i % 500 == 250:
            slow.append(request(tracer, at_ns=at, duration_ms=600))
        else:
            fast.append(request(tracer, at_ns=at))
    processor.force_flush()
    assert [receiver.received(t) for t in errors] == [2] * 10  # whole traces: root and child
    assert [receiver.received(t) for t in slow] == [2] * 10
    kept = [receiver.received(t) for t in fast if receiver.received(t)]
    assert set(kept) == {2}
    assert 15 <= len(kept) <= 150, f"{len(kept)} of {len(fast)} fast traces kept (expected ~50)"
    assert processor.kept["error"] >= 10 and processor.kept["slow"] >= 10


def test_when_traffic_is_low_every_trace_is_kept(
    receiver: Receiver, sampled: tuple[Tracer, AdaptiveSamplingProcessor, Clock]
) -> None:
    tracer, processor, clock = sampled
    for _ in range(2000):  # a burst drives the rate down …
        clock.now += 0.001
        request(tracer, at_ns=int(clock.now * 1e9))
    assert processor.rate() < 0.05
    clock.now += 30  # … a quiet spell brings it back up
    assert processor.rate() == 1.0
    quiet = []
    for _ in range(20):  # one request per second: under the target of 10/s
        clock.now += 1
        quiet.append(request(tracer, at_ns=int(clock.now * 1e9)))
    processor.force_flush()
    assert [receiver.received(t) for t in quiet] == [2] * 20


def test_production_samples_by_settings_and_local_keeps_everything(receiver: Receiver) -> None:
    receiver.clear()
    config = TelemetrySettings(
        exporter="otlp",
        otlp_endpoint=receiver.url,
        sampling=SamplingSettings(target_traces_per_second=0.001, base_rate=0.01),
    )
    telemetry = Telemetry.from_settings(config, profile="production")
    fast = [request(telemetry.tracer, at_ns=i * 10 * MS) for i in range(1, 301)]
    failed = request(telemetry.tracer, at_ns=4000 * MS, error=True)
    telemetry.shutdown()
    assert receiver.received(failed) == 2
    kept = sum(1 for t in fast if receiver.received(t))
    assert kept < 30  # about 1% once traffic is seen
    decisions = {  # the runtime's metrics count every decision (served on /metrics)
        d: telemetry.metrics.value("agent_platform_traces_sampled_total", {"decision": d}) or 0
        for d in ("error", "slow", "rate", "dropped")
    }
    assert decisions == {"error": 1, "slow": 0, "rate": kept, "dropped": 300 - kept}

    receiver.clear()
    provider = build_tracer_provider(config, profile="local")  # sampling off unless enabled
    tracer = provider.get_tracer("test")
    fast = [request(tracer, at_ns=i * 10 * MS) for i in range(1, 51)]
    provider.shutdown()
    assert all(receiver.received(t) == 2 for t in fast)


def test_sampling_settings_refuse_a_base_rate_above_the_maximum() -> None:
    with pytest.raises(ValueError, match=r"base_rate \(0.5\) must not exceed max_rate \(0.2\)"):
        SamplingSettings(base_rate=0.5, max_rate=0.2)


def test_held_traces_are_bounded_and_late_spans_follow_their_root(receiver: Receiver) -> None:
    receiver.clear()
    settings = SamplingSettings(enabled=True, max_pending_traces=2, target_traces_per_second=1e-9)
    processor = AdaptiveSamplingProcessor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.url)), settings
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    roots = [tracer.start_span(f"request {i}") for i in range(3)]
    for i, root in enumerate(roots):  # three traces whose roots never end: one too many
        child = tracer.start_span("chat", context=trace.set_span_in_context(root))
        if i == 0:
            child.set_status(Status(StatusCode.ERROR, "model failed"))
        child.end()
    processor.force_flush()
    first = roots[0].get_span_context().trace_id
    assert receiver.received(first) == 1  # the oldest was decided on what it had: an error
    assert processor.kept["error"] == 1

    late = tracer.start_span("memory write", context=trace.set_span_in_context(roots[0]))
    late.end()  # after its trace was decided (kept): follows it
    processor.force_flush()
    assert receiver.received(first) == 2
    provider.shutdown()  # settles the two still held on what they have
    assert sum(processor.kept.values()) == 3
