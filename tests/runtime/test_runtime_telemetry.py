"""Telemetry: GenAI span attributes exported to a JSON file, Prometheus metrics, JSON logs."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

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
    telemetry = Telemetry.from_settings(config)
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
    assert b"agent_platform_model_cost_usd" in m.exposition()


def test_separate_runtimes_have_separate_registries() -> None:
    a, b = Telemetry.disabled(), Telemetry.disabled()
    a.metrics.rate_limited("user")
    assert a.metrics.value("agent_platform_rate_limit_refusals_total", {"scope": "user"}) == 1
    assert b.metrics.value("agent_platform_rate_limit_refusals_total", {"scope": "user"}) is None


def test_json_logs_carry_the_trace_id(tmp_path: Path) -> None:
    provider = build_tracer_provider(TelemetrySettings(exporter="none"))
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


def test_otlp_needs_an_endpoint() -> None:
    with pytest.raises(ValueError, match="otlp_endpoint"):
        TelemetrySettings(exporter="otlp")
