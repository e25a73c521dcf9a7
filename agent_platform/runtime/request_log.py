"""Per-request metrics (Prometheus) and the request log (JSON lines), success or failure alike.

Metrics join the router's model-call metrics in the telemetry's registry:

* `agent_platform_agent_requests_total{tenant, agent, outcome, prompt, prompt_version, variant}`:
  outcome is `answered`, `refused` or the error class; `variant` is the prompt's A/B variant
  (`control`/`challenger`) or `none` when no test runs, so every request's metrics carry it.
* `agent_platform_agent_request_latency_seconds{tenant, outcome}` and
  `agent_platform_agent_phase_latency_seconds{phase}`: histograms.

The request log (`<home>/runtime/requests.jsonl`) keeps one line per request with its trace id, so
a failed request that produced no answer (and no conversation version) is still on record. The
file is private (0600); the free-text `error` of a line is sealed with the tenant's data key
(`cipher`, bound to the trace id), the other fields are identifiers and numbers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from agent_platform.runtime.telemetry import LATENCY_BUCKETS
from agent_platform.security.crypto.cipher import PLAINTEXT, ValueCipher
from agent_platform.security.crypto.envelope import is_sealed
from agent_platform.security.private_files import private_file

if TYPE_CHECKING:
    from agent_platform.runtime.response import AgentResponse
    from agent_platform.runtime.workflow import RunContext

PHASE_BUCKETS = (0.0005, 0.001, 0.0025, *LATENCY_BUCKETS)


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry, namespace: str = "agent_platform") -> None:
        self.requests = Counter(
            "agent_requests",
            "Agent requests by outcome, prompt version and A/B variant.",
            ["tenant", "agent", "outcome", "prompt", "prompt_version", "variant"],
            namespace=namespace,
            registry=registry,
        )
        self.latency = Histogram(
            "agent_request_latency_seconds",
            "End-to-end latency of agent requests.",
            ["tenant", "outcome"],
            namespace=namespace,
            registry=registry,
            buckets=PHASE_BUCKETS,
        )
        self.phases = Histogram(
            "agent_phase_latency_seconds",
            "Latency of each workflow phase.",
            ["phase"],
            namespace=namespace,
            registry=registry,
            buckets=PHASE_BUCKETS,
        )

    def observe(self, record: dict[str, Any]) -> None:
        prompt = record.get("prompt") or {}
        outcome = record["outcome"]
        tenant = record.get("tenant") or "unknown"
        self.requests.labels(
            tenant,
            record.get("agent", ""),
            outcome,
            prompt.get("name", ""),
            str(prompt.get("version", "")),
            prompt.get("variant") or "none",
        ).inc()
        latency = record.get("latency_ms", {})
        if "total" in latency:
            self.latency.labels(tenant, outcome).observe(latency["total"] / 1000.0)
        for phase, ms in latency.items():
            if phase != "total":
                self.phases.labels(phase).observe(ms / 1000.0)


class RequestLog:
    """Appends one JSON object per request to a file (thread-safe, line-buffered)."""

    TABLE = "request_log"

    def __init__(self, path: Path, *, cipher: ValueCipher = PLAINTEXT) -> None:
        self.path = private_file(Path(path))
        self.cipher = cipher
        self._lock = threading.Lock()
        self._handle = self.path.open("a", encoding="utf-8", buffering=1)

    def write(self, record: dict[str, Any]) -> None:
        if record.get("error") and self.cipher.enabled:
            error = self._seal(record, str(record["error"]))
            record = {**record, "error": error}
        line = json.dumps({"logged_at": time.time(), **record}, default=str)
        with self._lock:
            self._handle.write(line + "\n")

    def read(self) -> list[dict[str, Any]]:
        with self._lock:
            self._handle.flush()
        with self.path.open(encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
        return [self._opened(r) for r in records]

    def _seal(self, record: dict[str, Any], error: str) -> str:
        tenant = str(record.get("tenant") or "")
        return self.cipher.seal(tenant, self.TABLE, str(record.get("trace_id")), error)

    def _opened(self, record: dict[str, Any]) -> dict[str, Any]:
        error = record.get("error")
        if not is_sealed(error):  # lines written before encryption was on stay as they are
            return record
        tenant = str(record.get("tenant") or "")
        trace = str(record.get("trace_id"))
        return {**record, "error": self.cipher.open(tenant, self.TABLE, trace, str(error))}

    def close(self) -> None:
        with self._lock:
            self._handle.close()


def retrieved_chunks(
    hits: list[Any], used: list[Any], mask: Callable[[str, Any], str] | None = None
) -> list[dict[str, Any]]:
    """Every retrieved chunk, marked `used` when it was given to the model; `mask(text,
    metadata)` hides personal data in the text the response shows."""
    used_ids = {h.chunk_id for h in used}
    return [
        {
            "source": h.source,
            "chunk_id": h.chunk_id,
            "score": h.score,
            "text": mask(h.text, getattr(h, "metadata", None)) if mask else h.text,
            "used": h.chunk_id in used_ids,
        }
        for h in hits
    ]


def span_attributes(
    run: RunContext, outcome: str, response: AgentResponse | None
) -> dict[str, Any]:
    """Attributes of the request span once the outcome is known."""
    attributes: dict[str, Any] = {
        "gen_ai.conversation.id": run.session_id,
        "agent_platform.outcome": outcome,
    }
    if run.request is not None:
        attributes |= {
            "agent_platform.tenant": run.request.tenant,
            "agent_platform.user": run.request.user,
        }
    if run.prompt is not None:
        attributes |= {
            "agent_platform.prompt.name": run.prompt.name,
            "agent_platform.prompt.version": run.prompt.version,
            "agent_platform.prompt.variant": run.prompt.variant or "none",
        }
    if response is not None:
        attributes |= {
            "gen_ai.response.model": response.model,
            "gen_ai.usage.input_tokens": response.usage.input_tokens,
            "gen_ai.usage.output_tokens": response.usage.output_tokens,
            "agent_platform.state_version": response.state_version,
            "agent_platform.citations": len(response.citations),
        }
    return attributes
