"""Telemetry: GenAI span attributes exported to a JSON file or by OTLP/HTTP to a local collector,
Prometheus metrics, JSON logs."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from prometheus_client.parser import text_string_to_metric_families

from agent_platform.runtime.catalogue import ModelCatalogue, default_models
from agent_platform.runtime.config import RouteSettings, TelemetrySettings
from agent_platform.runtime.router import Router
from agent_platform.runtime.sources import format_sources
from agent_platform.runtime.telemetry import (
    JsonLogFormatter,
    Telemetry,
    build_tracer_provider,
)


def test_model_calls_are_traced_and_counted(tmp_path: Path) -> None:
    config = TelemetrySettings(exporter="jsonfile", json_path=tmp_path / "traces.jsonl")
    telemetry = Telemetry.from_settings(config, profile="local")
    router = Router(
        ModelCatalogue(default_models()),
        routes={"default": RouteSettings(models=["extractive"])},
        telemetry=telemetry,
    )
    messages = [
        SystemMessage(format_sources([("a.md", "The launch is on Friday.")])),
        HumanMessage("When is the launch?"),
    ]
    response = router.invoke(messages, tenant="acme")
    telemetry.shutdown()

    spans = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    assert len(spans) == 1
    span = spans[0]
    assert span["name"] == "chat extractive"
    attrs = span["attributes"]
    assert attrs["gen_ai.system"] == "embedded"
    assert attrs["gen_ai.request.model"] == "extractive"
    assert attrs["gen_ai.usage.input_tokens"] == response.input_tokens
    assert attrs["gen_ai.usage.output_tokens"] == response.output_tokens
    assert attrs["agent_platform.tenant"] == "acme"
    assert span["resource"]["attributes"]["service.name"] == "agent-platform"

    m = telemetry.metrics
    labels = {"model": "extractive", "tenant": "acme"}
    assert m.value("agent_platform_model_calls_total", {**labels, "outcome": "success"}) == 1
    assert (
        m.value("agent_platform_model_tokens_total", {**labels, "direction": "output"})
        == response.output_tokens
    )
    assert (
        m.value("agent_platform_model_call_latency_seconds_count", {**labels, "outcome": "success"})
        == 1
    )
    assert m.value("agent_platform_circuit_breaker_state", {"model": "extractive"}) == 0
    assert m.value("agent_platform_model_cost_usd_total", labels) == 0.0  # free, yet reported
    served = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(m.exposition().decode())
        for sample in family.samples
    }
    key = tuple(sorted({**labels, "outcome": "success"}.items()))
    assert served[("agent_platform_model_calls_total", key)] == 1.0


def test_separate_runtimes_have_separate_registries() -> None:
    a, b = Telemetry.disabled(), Telemetry.disabled()
    a.metrics.rate_limited("user")
    assert a.metrics.value("agent_platform_rate_limit_refusals_total", {"scope": "user"}) == 1
    assert b.metrics.value("agent_platform_rate_limit_refusals_total", {"scope": "user"}) is None


def test_json_logs_carry_the_trace_id(tmp_path: Path) -> None:
    provider = build_tracer_provider(TelemetrySettings(exporter="none"), profile="local")
    tracer = provider.get_tracer("test")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("agent_platform.test_runtime_telemetry")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with tracer.start_as_current_span("request") as span:
            logger.info("routed", extra={"model": "extractive", "tenant": "acme"})
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["message"] == "routed" and inside["model"] == "extractive"
    assert inside["level"] == "INFO" and "timestamp" in inside
    assert "trace_id" not in outside


OTLP_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@pytest.fixture
def no_otlp_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in OTLP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_otlp_needs_an_endpoint(no_otlp_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="otlp_endpoint or the OTEL_EXPORTER_OTLP_ENDPOINT"):
        TelemetrySettings(exporter="otlp")


def test_the_exporter_default_follows_the_profile(no_otlp_env: pytest.MonkeyPatch) -> None:
    assert TelemetrySettings().resolved_exporter("local") == "jsonfile"
    with pytest.raises(ValueError, match="profile 'production' exports traces by OTLP") as info:
        Telemetry.from_settings(TelemetrySettings(), profile="production")
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in str(info.value)
    assert TelemetrySettings(exporter="console").resolved_exporter("production") == "console"
    no_otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert TelemetrySettings().resolved_exporter("production") == "otlp"
    assert TelemetrySettings().resolved_exporter("local") == "jsonfile"
    with pytest.raises(ValueError, match="profile: unknown profile 'prod' \\(local, production\\)"):
        TelemetrySettings(exporter="console").resolved_exporter("prod")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="profile"):  # no silent default: it must be said
        Telemetry.from_settings(TelemetrySettings(exporter="none"))  # type: ignore[call-arg]


class Collector:
    """A local OTLP/HTTP receiver: keeps the path, content type and body of each POST."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str, bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.posts.append((self.path, self.headers.get("Content-Type", ""), body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def spans(self, path: str) -> list:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        spans = []
        for posted_path, kind, body in self.posts:
            assert kind == "application/x-protobuf"
            if posted_path == path:
                request = ExportTraceServiceRequest.FromString(body)
                spans += [
                    s for r in request.resource_spans for ss in r.scope_spans for s in ss.spans
                ]
        return spans


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    yield server
    server.server.shutdown()
    server.server.server_close()


def traced_call(config: TelemetrySettings, profile: str) -> None:
    telemetry = Telemetry.from_settings(config, profile=profile)
    router = Router(
        ModelCatalogue(default_models()),
        routes={"default": RouteSettings(models=["extractive"])},
        telemetry=telemetry,
    )
    router.invoke(
        [
            SystemMessage(format_sources([("a.md", "The launch is on Friday.")])),
            HumanMessage("When?"),
        ],
        tenant="acme",
    )
    telemetry.shutdown()  # flushes the batch to the collector
    router.close()


def test_production_exports_by_otlp_to_the_standard_endpoint(
    no_otlp_env: pytest.MonkeyPatch, collector: Collector
) -> None:
    no_otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    traced_call(TelemetrySettings(), "production")
    spans = collector.spans("/v1/traces")
    assert [s.name for s in spans] == ["chat extractive"]
    attributes = {a.key: a.value for a in spans[0].attributes}
    assert attributes["gen_ai.request.model"].string_value == "extractive"
    assert attributes["agent_platform.tenant"].string_value == "acme"
    assert attributes["gen_ai.usage.output_tokens"].int_value > 0


def test_a_configured_otlp_endpoint_is_the_full_traces_url(
    no_otlp_env: pytest.MonkeyPatch, collector: Collector
) -> None:
    traced_call(TelemetrySettings(otlp_endpoint=f"{collector.url}/collector/traces"), "production")
    assert [s.name for s in collector.spans("/collector/traces")] == ["chat extractive"]
