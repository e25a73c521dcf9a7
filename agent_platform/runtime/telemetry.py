"""Traces, metrics and logs of the runtime.

* Traces: OpenTelemetry. One span per model call, with the GenAI semantic-convention attributes
  (`gen_ai.system`, `gen_ai.request.model`, `gen_ai.usage.input_tokens`, …). Exported to a
  JSON-lines file (the local default), the console, or OTLP/HTTP (the production default; needs
  the optional `opentelemetry-exporter-otlp`), adaptively sampled in production (every error and
  slow request kept; `sampling.py`). A runtime serving a registered agent version also
  logs them to MLflow, linked to that version (`mlflow_tracing.py`; local profile by default).
* Metrics: `prometheus-client` in a dedicated `CollectorRegistry`, so several runtimes (and tests)
  in one process never collide and the serving process decides where to expose them.
* Logs: one JSON object per line carrying the current trace and span ids, so a log line leads to its
  trace.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Span, Status, StatusCode, Tracer
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from agent_platform.runtime.catalogue import ModelSpec
from agent_platform.runtime.circuit_breaker import BreakerState
from agent_platform.runtime.config import TelemetrySettings
from agent_platform.runtime.sampling import AdaptiveSamplingProcessor
from agent_platform.settings import Profile

TRACER_NAME = "agent_platform.runtime"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span as one JSON object per line (readable without a collector)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(json.loads(span.to_json(indent=None))) for span in spans]
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(line + "\n" for line in lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def build_tracer_provider(
    config: TelemetrySettings,
    home_dir: Path | None = None,
    *,
    profile: Profile,
    batch: bool = True,
    mlflow: SpanExporter | None = None,
    resource: dict[str, str] | None = None,
    on_sampling_decision: Callable[[str], None] | None = None,
) -> TracerProvider:
    """A tracer provider exporting where `config` says (its default depends on `profile`, which
    is required so production never falls back to local files), and to `mlflow` as well when
    given. Not installed globally. `on_sampling_decision` hears each sampled trace's decision."""
    kind = config.resolved_exporter(profile)
    provider = TracerProvider(
        resource=Resource.create({"service.name": config.service_name, **(resource or {})})
    )
    if mlflow is not None:
        provider.add_span_processor(
            BatchSpanProcessor(mlflow) if batch else SimpleSpanProcessor(mlflow)
        )
    exporter: SpanExporter | None
    if kind == "none":
        exporter = None
    elif kind == "console":
        exporter = ConsoleSpanExporter()
    elif kind == "jsonfile":
        path = config.json_path or (home_dir or Path(".agent_platform")) / "telemetry" / (
            "traces.jsonl"
        )
        exporter = JsonLinesSpanExporter(Path(path))
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ImportError(
                "telemetry.exporter 'otlp' needs opentelemetry-exporter-otlp "
                "(pip install 'agent-platform[otlp]')"
            ) from exc
        exporter = OTLPSpanExporter(endpoint=config.otlp_endpoint)  # None: the OTEL_* variables
    if exporter is not None:
        processor: SpanProcessor = (
            BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        )
        if config.sampling.active(profile):
            processor = AdaptiveSamplingProcessor(
                processor, config.sampling, on_decision=on_sampling_decision
            )
        provider.add_span_processor(processor)
    return provider


class RuntimeMetrics:
    """Prometheus metrics of model calls, breakers and rate limits, in their own registry."""

    def __init__(
        self, registry: CollectorRegistry | None = None, namespace: str = "agent_platform"
    ) -> None:
        self.registry = registry or CollectorRegistry()
        ns = namespace
        self.latency = Histogram(
            "model_call_latency_seconds",
            "Latency of model calls.",
            ["model", "tenant", "outcome"],
            namespace=ns,
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.calls = Counter(
            "model_calls",
            "Model calls by outcome (success or error).",
            ["model", "tenant", "outcome"],
            namespace=ns,
            registry=self.registry,
        )
        self.tokens = Counter(
            "model_tokens",
            "Tokens by direction (input or output).",
            ["model", "tenant", "direction"],
            namespace=ns,
            registry=self.registry,
        )
        self.cost = Counter(
            "model_cost_usd",
            "Cost of model calls in USD.",
            ["model", "tenant"],
            namespace=ns,
            registry=self.registry,
        )
        self.breaker_state = Gauge(
            "circuit_breaker_state",
            "Circuit state by model: 0 closed, 1 half-open, 2 open.",
            ["model"],
            namespace=ns,
            registry=self.registry,
        )
        self.rate_limit_refusals = Counter(
            "rate_limit_refusals",
            "Calls refused by a rate limit, by scope.",
            ["scope"],
            namespace=ns,
            registry=self.registry,
        )
        self.traces_sampled = Counter(
            "traces_sampled",
            "Traces by adaptive sampling decision: kept for an error, for being slow, by the "
            "rate, or dropped.",
            ["decision"],
            namespace=ns,
            registry=self.registry,
        )

    def observe_call(
        self,
        *,
        model: str,
        tenant: str,
        latency_s: float,
        ok: bool,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float = 0.0,
    ) -> None:
        outcome = "success" if ok else "error"
        self.latency.labels(model, tenant, outcome).observe(latency_s)
        self.calls.labels(model, tenant, outcome).inc()
        if input_tokens:
            self.tokens.labels(model, tenant, "input").inc(input_tokens)
        if output_tokens:
            self.tokens.labels(model, tenant, "output").inc(output_tokens)
        if ok:  # zero for free models, so every answering model has a cost sample
            self.cost.labels(model, tenant).inc(cost_usd)

    def on_breaker_change(self, model: str, old: BreakerState, new: BreakerState) -> None:
        """A `CircuitBreakerRegistry` listener: the gauge follows the breaker's state."""
        self.breaker_state.labels(model).set(new.gauge_value)

    def rate_limited(self, scope: str) -> None:
        self.rate_limit_refusals.labels(scope).inc()

    def trace_sampled(self, decision: str) -> None:
        self.traces_sampled.labels(decision).inc()

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """A sample's current value, by full sample name (e.g. `…_model_calls_total`)."""
        return self.registry.get_sample_value(name, labels or {})

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (to serve on /metrics)."""
        return generate_latest(self.registry)


@dataclass
class Telemetry:
    """A tracer and the metrics, handed to the router and the request workflow."""

    tracer: Tracer
    metrics: RuntimeMetrics
    provider: TracerProvider | None = None

    @classmethod
    def from_settings(
        cls,
        config: TelemetrySettings,
        home_dir: Path | None = None,
        *,
        profile: Profile,
        mlflow_tracking_uri: str | None = None,
        agent: str = "",
        model_id: str = "",
    ) -> Telemetry:
        """`model_id`: the MLflow LoggedModel of the agent version served, which traces link to;
        with `mlflow_tracking_uri` and `agent` it turns MLflow tracing on where `config` says."""
        mlflow = None
        if (
            mlflow_tracking_uri
            and agent
            and config.mlflow_enabled(profile, serving_version=bool(model_id))
        ):
            from agent_platform.model_registry.registry import EXPERIMENT_PREFIX
            from agent_platform.runtime.mlflow_tracing import MlflowSpanExporter

            experiment = f"{EXPERIMENT_PREFIX}{agent}"
            mlflow = MlflowSpanExporter(mlflow_tracking_uri, experiment, model_id)
        resource = {"agent_platform.model_id": model_id} if model_id else None
        metrics = RuntimeMetrics()
        provider = build_tracer_provider(
            config,
            home_dir,
            profile=profile,
            mlflow=mlflow,
            resource=resource,
            on_sampling_decision=metrics.trace_sampled,
        )
        return cls(provider.get_tracer(TRACER_NAME), metrics, provider)

    @classmethod
    def disabled(cls) -> Telemetry:
        """No spans exported; metrics still counted (in a private registry)."""
        return cls(trace.NoOpTracer(), RuntimeMetrics(), None)

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.force_flush()
            self.provider.shutdown()

    @contextmanager
    def model_call(
        self, spec: ModelSpec, *, tenant: str = "", attempt: int = 1, **request: Any
    ) -> Iterator[Span]:
        """A span for one model call, named `chat <model>` per the GenAI conventions."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": spec.provider,
            "gen_ai.provider.name": spec.provider,
            "gen_ai.request.model": spec.model,
            "agent_platform.model": spec.name,
            "agent_platform.attempt": attempt,
        }
        if tenant:
            attributes["agent_platform.tenant"] = tenant
        for key in ("max_tokens", "temperature", "top_p"):
            if request.get(key) is not None:
                attributes[f"gen_ai.request.{key}"] = request[key]
        with self.tracer.start_as_current_span(
            f"chat {spec.model}", kind=trace.SpanKind.CLIENT, attributes=attributes
        ) as span:
            yield span


def record_usage(span: Span, *, response_model: str, input_tokens: int, output_tokens: int) -> None:
    """Set the GenAI response attributes on a model-call span."""
    span.set_attribute("gen_ai.response.model", response_model)
    span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", output_tokens)


def record_error(span: Span, error: BaseException) -> None:
    span.set_attribute("error.type", type(error).__name__)
    span.set_status(Status(StatusCode.ERROR, _masked(str(error)[:500])))


def record_exception(span: Span, error: BaseException, message: str) -> None:
    """`span.record_exception` with `message` (the masked error) for the exception's text; the
    stack trace is left out, since its last line repeats the unmasked message."""
    span.record_exception(
        error,
        attributes={"exception.message": message, "exception.stacktrace": type(error).__name__},
    )


def _masked(text: str) -> str:
    """`text` with personal data masked: traces and logs keep none (security/pii.py)."""
    from agent_platform.security.pii import configured_detector

    return configured_detector().mask(text)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record, with `trace_id`/`span_id` of the span current when logging."""

    _RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": _masked(record.getMessage()),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            payload["trace_id"] = format(context.trace_id, "032x")
            payload["span_id"] = format(context.span_id, "016x")
        for key, value in vars(record).items():
            if key not in self._RESERVED and not key.startswith("_"):
                payload[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            payload["exception"] = _masked(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False)


def configure_json_logging(
    logger_name: str = "agent_platform", level: int = logging.INFO, stream: Any = None
) -> logging.Handler:
    """Attach a JSON-lines handler to `logger_name` (returns it, so callers can remove it)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler
