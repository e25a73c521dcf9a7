"""Runtime traces into MLflow: the OpenTelemetry spans, as MLflow's own OTLP endpoint ingests them,
written to the agent's experiment and linked to the serving agent version (its LoggedModel), so
the version's Traces tab lists every request it answered.

An extra span processor next to the configured exporter (JSON file, console or OTLP), so OTLP to
another backend keeps working. Spans are batched off the request path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

MODEL_ID_ATTRIBUTE = "agent_platform.model_id"
_METADATA = (
    ("agent_platform.tenant", "agent_platform.tenant"),
    ("gen_ai.conversation.id", "agent_platform.session"),
)
_log = logging.getLogger(__name__)


class MlflowSpanExporter(SpanExporter):
    """Logs finished spans to an MLflow store: one MLflow trace per OpenTelemetry trace, with the
    LoggedModel id (`mlflow.modelId`) of the version that served it."""

    def __init__(self, tracking_uri: str, experiment_name: str, model_id: str = "") -> None:
        # MLflow prices spans from a model catalogue it downloads from GitHub on first use; this
        # platform prices its own calls, and a serving process makes no such outbound request
        os.environ.setdefault("MLFLOW_MODEL_CATALOG_URI", "")
        from mlflow import MlflowClient
        from mlflow.tracing.client import TracingClient

        self.client = MlflowClient(tracking_uri)
        self.traces = TracingClient(tracking_uri)
        self.experiment_name = experiment_name
        self.model_id = model_id
        self._experiment_id: str | None = None

    def _experiment(self) -> str:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment_name)
            self._experiment_id = (
                found.experiment_id
                if found is not None
                else self.client.create_experiment(self.experiment_name)
            )
        return self._experiment_id

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from mlflow.entities import Span
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        try:
            converted = [
                Span.from_otel_proto(span, resource=resource_spans.resource)
                for resource_spans in encode_spans(spans).resource_spans
                for scope in resource_spans.scope_spans
                for span in scope.spans
            ]
            experiment = self._experiment()
            self.traces.log_spans(experiment, converted)
            for root in (s for s in spans if s.parent is None):
                self.traces.start_trace(self._trace_info(root, experiment))
        except Exception as exc:  # telemetry never fails a request
            _log.warning("MLflow trace export failed: %s", exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _trace_info(self, root: ReadableSpan, experiment: str) -> Any:
        from mlflow.entities import TraceInfo, TraceLocation, TraceState
        from mlflow.tracing.utils import generate_mlflow_trace_id_from_otel_trace_id

        attributes = dict(root.attributes or {})
        model_id = str(attributes.get(MODEL_ID_ATTRIBUTE) or self.model_id)
        failed = root.status.status_code.name == "ERROR"
        metadata = {"mlflow.trace_schema.version": "3"}
        if model_id:
            metadata["mlflow.modelId"] = model_id
        for key, name in _METADATA:
            if attributes.get(key):
                metadata[name] = str(attributes[key])
        start, end = root.start_time or 0, root.end_time or root.start_time or 0
        return TraceInfo(
            trace_id=generate_mlflow_trace_id_from_otel_trace_id(root.context.trace_id),
            trace_location=TraceLocation.from_experiment_id(experiment),
            request_time=start // 1_000_000,
            execution_duration=(end - start) // 1_000_000,
            state=TraceState.ERROR if failed else TraceState.OK,
            trace_metadata=metadata,
            tags={"mlflow.traceName": root.name, **_grouping(attributes)},
        )

    def shutdown(self) -> None:
        return None


def _grouping(attributes: Mapping[str, object]) -> dict[str, str]:
    """Trace tags a person filters on in the Traces view."""
    tags: dict[str, str] = {}
    for key in ("agent_platform.outcome", "gen_ai.response.model", "agent_platform.prompt.name"):
        if attributes.get(key) is not None:
            tags[key.split(".", 1)[1]] = str(attributes[key])
    return tags
