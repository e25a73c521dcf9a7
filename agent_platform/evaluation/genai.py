"""An evaluation as MLflow 3 shows GenAI evaluations: `mlflow.genai.evaluate` over the answers the
runner collected, with the platform's scorers, the dataset as the run's input and the version's
LoggedModel as its model, so the Evaluations and Agent versions views list per-example results.

The scorers are code, never LLM judges, and run offline. Correctness, token F1 and PII are scored
here from the answer and the expectations with the same functions as `metrics.py`; what only the
run could measure (groundedness against the used chunks, citations, retrieval, consistency across
repeats, latency, errors) is carried in the outputs and reported as it was measured.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Feedback
from mlflow.genai.datasets.evaluation_dataset import compute_records_sha256
from mlflow.genai.scorers import scorer
from mlflow.utils.mlflow_tags import MLFLOW_GENAI_EVALUATE_DATASET_IDENTITY

from agent_platform.evaluation import metrics as m
from agent_platform.evaluation.dataset import EvaluationDataset, Example
from agent_platform.evaluation.runner import ExampleResult
from agent_platform.model_registry.store import sqlite_path, using_tracking_uri


def _measured(outputs: dict[str, Any], key: str) -> float | None:
    value = outputs.get(key)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


@scorer
def correct(outputs: dict[str, Any], expectations: dict[str, Any]) -> Feedback:
    """Every key fact in the answer (answerable), or a refusal (unanswerable)."""
    answer, refused = outputs.get("answer", ""), bool(outputs.get("refused"))
    facts = expectations.get("key_facts", [])
    value = not outputs.get("error") and m.is_correct(
        answerable=expectations.get("answerable", True),
        key_facts=facts,
        answer=answer,
        refused=refused,
    )
    missing = [f for f in facts if f not in m.facts_found(facts, answer)]
    rationale = (
        outputs.get("error")
        or (f"missing: {'; '.join(missing)}" if missing else "")
        or ("refused" if refused else "all key facts present")
    )
    return Feedback(value=bool(value), rationale=rationale)


@scorer
def token_f1(outputs: dict[str, Any], expectations: dict[str, Any]) -> float | None:
    """Token overlap with the reference answer (answerable examples only)."""
    if not expectations.get("answerable", True) or not expectations.get("expected_response"):
        return None
    return m.token_f1(outputs.get("answer", ""), expectations["expected_response"])


@scorer
def no_pii(outputs: dict[str, Any]) -> Feedback:
    """No e-mail address, phone number, card or similar in the answer."""
    found = m.pii_found(outputs.get("answer", ""))
    return Feedback(value=not found, rationale="; ".join(found) or "none found")


@scorer
def groundedness(outputs: dict[str, Any]) -> float | None:
    """Share of answer sentences supported by the chunks the agent used (as measured)."""
    return _measured(outputs, "groundedness")


@scorer
def citations_valid(outputs: dict[str, Any]) -> Feedback:
    """Citations point at sources the agent was given (as checked during the run)."""
    problems = outputs.get("citation_problems", "")
    return Feedback(value=not problems, rationale=problems or "valid")


@scorer
def recall_at_k(outputs: dict[str, Any]) -> float | None:
    """Relevant sources among the retrieved ones (as measured)."""
    return _measured(outputs, "recall_at_k")


@scorer
def consistency(outputs: dict[str, Any]) -> float | None:
    """Agreement of repeated and paraphrased askings with the first answer (as measured)."""
    return _measured(outputs, "consistency")


@scorer
def latency_ms(outputs: dict[str, Any]) -> float | None:
    """End-to-end latency of the scored request (as measured)."""
    return _measured(outputs, "latency_ms")


SCORERS = [
    correct,
    token_f1,
    no_pii,
    groundedness,
    citations_valid,
    recall_at_k,
    consistency,
    latency_ms,
]
_OUTPUT_FIELDS = (
    "answer",
    "refused",
    "error",
    "model",
    "prompt",
    "groundedness",
    "citation_problems",
    "recall_at_k",
    "consistency",
    "latency_ms",
)


def evaluation_frame(
    dataset: EvaluationDataset, examples: Sequence[Example], results: Sequence[ExampleResult]
) -> pd.DataFrame:
    """inputs / outputs / expectations per example, named after the dataset and its version."""
    by_id = {e.id: e for e in examples}
    rows = []
    for result in results:
        example = by_id[result.example_id]
        row = result.row()
        rows.append(
            {
                "inputs": {"question": result.question},
                "outputs": {k: _plain(row[k]) for k in _OUTPUT_FIELDS},
                "expectations": {
                    "answerable": example.answerable,
                    "key_facts": list(example.key_facts),
                    "expected_response": example.reference,
                    "relevant_sources": list(example.relevant_sources),
                },
                "tags": {"example_id": example.id},
            }
        )
    frame = pd.DataFrame(rows)
    frame.attrs[MLFLOW_GENAI_EVALUATE_DATASET_IDENTITY] = {
        "name": dataset.name,
        "digest": dataset.version[:36],
        "source_type": "local",
        "source": f'{{"uri": "{dataset.path.resolve().as_uri()}"}}',
        "records_sha256": compute_records_sha256(frame),
    }
    return frame


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def log_genai_evaluation(
    tracking_uri: str,
    run_id: str,
    model_id: str,
    dataset: EvaluationDataset,
    examples: Sequence[Example],
    results: Sequence[ExampleResult],
) -> dict[str, float]:
    """Run the scorers in the existing run `run_id` for the LoggedModel `model_id`; one trace
    with its assessments per example. Returns MLflow's aggregated scorer metrics."""
    frame = evaluation_frame(dataset, examples, results)
    # the scorers are cheap code: parallel workers only contend for an SQLite store's connections
    serial = sqlite_path(tracking_uri) is not None
    workers = {"MLFLOW_GENAI_EVAL_MAX_WORKERS": "1", "MLFLOW_GENAI_EVAL_MAX_SCORER_WORKERS": "1"}
    with (
        _environment(workers if serial else {}),
        using_tracking_uri(tracking_uri),
        mlflow.start_run(run_id=run_id),
    ):
        outcome = mlflow.genai.evaluate(data=frame, scorers=SCORERS, model_id=model_id)
    return {k: float(v) for k, v in outcome.metrics.items()}


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
