"""Run an agent over a dataset and score every answer; errors are failures, never dropped.

Every example is asked once; for consistency it is asked `repeats` more times and once per
paraphrase, each in a fresh session, and each variant is compared with the first answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from agent_platform.evaluation import metrics as m
from agent_platform.evaluation.dataset import Example
from agent_platform.runtime.response import AgentResponse

EVAL_USER = "evaluation"


class AgentRunner(Protocol):
    """What evaluation needs of `AgentRuntime`."""

    def run(
        self, *, tenant: str, user: str, input: str, session_id: str | None = None
    ) -> AgentResponse: ...


@dataclass
class ExampleResult:
    """One example's scores (flat, so it is one row of the per-example MLflow table)."""

    example_id: str
    question: str
    answerable: bool
    answer: str = ""
    refused: bool = False
    correct: bool = False
    token_f1: float = math.nan
    facts_missing: list[str] = field(default_factory=list)
    groundedness: float = math.nan
    citation_problems: list[str] = field(default_factory=list)
    pii: list[str] = field(default_factory=list)
    recall_at_k: float = math.nan
    reciprocal_rank: float = math.nan
    consistency: float = math.nan
    variants: int = 0
    latency_ms: float = math.nan
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    model: str = ""
    prompt: str = ""
    error: str = ""

    @property
    def compliant(self) -> bool:
        return not self.error and not self.pii and not self.citation_problems

    def row(self) -> dict[str, Any]:
        row = asdict(self)
        for key in ("facts_missing", "citation_problems", "pii"):
            row[key] = "; ".join(row[key])
        row["compliant"] = self.compliant
        return row


@dataclass
class EvaluationResult:
    agent: str
    examples: list[ExampleResult]
    metrics: dict[str, float]
    latencies_ms: list[float]
    duration_s: float
    warmup_ms: float = 0.0

    def scores(self, metric: str = "correct") -> dict[str, float]:
        """Per-example score by example id, for paired comparisons."""
        return {e.example_id: float(getattr(e, metric)) for e in self.examples}


def score_response(example: Example, response: AgentResponse, k: int) -> ExampleResult:
    """Score one answer against its example."""
    used = [c.text for c in response.retrieved if c.used]
    sources = [c.source for c in response.retrieved]
    answer = response.answer
    found = m.facts_found(example.key_facts, answer)
    return ExampleResult(
        example_id=example.id,
        question=example.question,
        answerable=example.answerable,
        answer=answer,
        refused=response.refused,
        correct=m.is_correct(
            answerable=example.answerable,
            key_facts=example.key_facts,
            answer=answer,
            refused=response.refused,
        ),
        token_f1=m.token_f1(answer, example.reference) if example.answerable else math.nan,
        facts_missing=[f for f in example.key_facts if f not in found],
        groundedness=m.groundedness(answer, used, refused=response.refused),
        citation_problems=m.citation_problems(response),
        pii=m.pii_found(answer),
        recall_at_k=m.recall_at_k(sources, example.relevant_sources, k),
        reciprocal_rank=m.reciprocal_rank(sources, example.relevant_sources),
        latency_ms=float(response.latency_ms.get("total", math.nan)),
        input_tokens=response.usage.input_tokens,
        output_tokens=response.usage.output_tokens,
        cost=response.cost,
        model=response.model,
        prompt=f"{response.prompt.name}@{response.prompt.version}",
    )


def _ask(runner: AgentRunner, tenant: str, text: str) -> tuple[AgentResponse | None, str, float]:
    started = time.perf_counter()
    try:
        response = runner.run(tenant=tenant, user=EVAL_USER, input=text)
        return response, "", (time.perf_counter() - started) * 1000
    except Exception as exc:  # an evaluation records every failure instead of stopping
        return None, f"{type(exc).__name__}: {exc}", (time.perf_counter() - started) * 1000


def _warm_up(runner: AgentRunner, tenant: str, examples: Sequence[Example]) -> float:
    """One unscored request first: a fresh runtime loads its models on first use (Gemma takes
    seconds), and the latency gate is about answering, not loading. Its outcome is ignored."""
    if not examples:
        return 0.0
    return _ask(runner, tenant, examples[0].question)[2]


def evaluate(
    runner: AgentRunner,
    examples: Sequence[Example],
    *,
    agent: str,
    tenant: str,
    k: int = 5,
    repeats: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationResult:
    """Ask every example (plus repeats and paraphrases) and score the answers."""
    warmup_ms = _warm_up(runner, tenant, examples)
    started = time.perf_counter()
    results: list[ExampleResult] = []
    latencies: list[float] = []
    for index, example in enumerate(examples):
        response, error, wall_ms = _ask(runner, tenant, example.question)
        if response is None:
            result = ExampleResult(example.id, example.question, example.answerable, error=error)
            result.latency_ms = wall_ms
        else:
            result = score_response(example, response, k)
        latencies.append(result.latency_ms)
        agreements = []
        for text in [example.question] * repeats + list(example.paraphrases):
            other, other_error, other_ms = _ask(runner, tenant, text)
            if other is None or response is None:
                agreements.append(False)
                result.error = result.error or f"variant {text!r}: {other_error}"
                latencies.append(other_ms)
                continue
            latencies.append(float(other.latency_ms.get("total", other_ms)))
            agreements.append(
                m.answers_agree(
                    response.answer,
                    other.answer,
                    first_refused=response.refused,
                    second_refused=other.refused,
                    key_facts=example.key_facts,
                )
            )
        result.variants = len(agreements)
        result.consistency = sum(agreements) / len(agreements) if agreements else math.nan
        results.append(result)
        if progress:
            progress(index + 1, len(examples))
    return EvaluationResult(
        agent=agent,
        examples=results,
        metrics=summarize(results, latencies),
        latencies_ms=latencies,
        duration_s=time.perf_counter() - started,
        warmup_ms=warmup_ms,
    )


def summarize(results: Sequence[ExampleResult], latencies: Sequence[float]) -> dict[str, float]:
    """The metrics of one evaluation; errored examples count as incorrect, non-compliant and
    inconsistent (quality metrics such as groundedness are over the examples that answered)."""
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    ok = [r for r in results if not r.error]
    comparisons = sum(r.variants for r in results)
    agreeing = sum(r.consistency * r.variants for r in results if r.variants)
    total = max(len(results), 1)
    return {
        "examples": float(len(results)),
        "errors": float(len(results) - len(ok)),
        "accuracy": sum(r.correct for r in results) / total,
        "answerable_accuracy": m.mean(float(r.correct) for r in answerable),
        "refusal_rate_unanswerable": m.mean(float(r.refused) for r in unanswerable),
        "false_refusal_rate": m.mean(float(r.refused) for r in answerable),
        "token_f1": m.mean(r.token_f1 for r in answerable),
        "groundedness": m.mean(r.groundedness for r in ok),
        "citation_validity": m.mean(float(not r.citation_problems) for r in ok),
        "pii_leaks": float(sum(bool(r.pii) for r in ok)),
        "compliance": sum(r.compliant for r in results) / total,
        "recall_at_k": m.mean(r.recall_at_k for r in answerable if not r.error),
        "mrr": m.mean(r.reciprocal_rank for r in answerable if not r.error),
        "consistency": agreeing / comparisons if comparisons else math.nan,
        "latency_p50_ms": m.percentile(latencies, 50),
        "latency_p95_ms": m.percentile(latencies, 95),
        "latency_p99_ms": m.percentile(latencies, 99),
        "input_tokens": float(sum(r.input_tokens for r in results)),
        "output_tokens": float(sum(r.output_tokens for r in results)),
        "cost_usd": sum(r.cost for r in results),
        "cost_per_example_usd": sum(r.cost for r in results) / total,
    }
