"""Evaluation of agent model versions: datasets, metrics, A/B comparison and quality gates.

Library code (no Dagster import). `EvaluationService` runs a round end to end; the pieces are
usable alone: `load_dataset`, `evaluate`, `paired_bootstrap`, `evaluate_gates`.
"""

from agent_platform.evaluation.candidates import Candidate, EvaluationPlan, PlanError, load_plan
from agent_platform.evaluation.compare import Comparison, ComparisonError, paired_bootstrap
from agent_platform.evaluation.dataset import (
    DatasetError,
    EvaluationDataset,
    Example,
    RowProblem,
    load_dataset,
)
from agent_platform.evaluation.gates import GateResult, GateThresholds, all_passed, evaluate_gates
from agent_platform.evaluation.runner import (
    AgentRunner,
    EvaluationResult,
    ExampleResult,
    evaluate,
    score_response,
    summarize,
)
from agent_platform.evaluation.service import (
    CandidateEvaluation,
    EvaluationRound,
    EvaluationService,
)

__all__ = [
    "AgentRunner",
    "Candidate",
    "CandidateEvaluation",
    "Comparison",
    "ComparisonError",
    "DatasetError",
    "EvaluationDataset",
    "EvaluationPlan",
    "EvaluationResult",
    "EvaluationRound",
    "EvaluationService",
    "Example",
    "ExampleResult",
    "GateResult",
    "GateThresholds",
    "PlanError",
    "RowProblem",
    "all_passed",
    "evaluate",
    "evaluate_gates",
    "load_dataset",
    "load_plan",
    "paired_bootstrap",
    "score_response",
    "summarize",
]
