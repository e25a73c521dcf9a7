"""The evaluation plan: which agent configurations compete, on which tenant and dataset.

Read from `evaluation/agents.toml`; every candidate becomes an `AgentConfig` named after the
registered model, so all candidates are versions of one agent and can replace each other.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent_platform.evaluation.gates import GateThresholds
from agent_platform.runtime.agent_config import AgentConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PLAN_PATH = PROJECT_ROOT / "evaluation" / "agents.toml"
_EVAL_KEYS = ("max_examples", "repeats")


class PlanError(ValueError):
    """An evaluation plan that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Candidate:
    key: str
    config: AgentConfig
    max_examples: int | None = None
    repeats: int = 1


@dataclass
class EvaluationPlan:
    agent: str
    tenant: str
    dataset_path: Path
    gates: GateThresholds
    candidates: dict[str, Candidate] = field(default_factory=dict)
    path: Path | None = None
    content_hash: str = ""

    def select(self, keys: list[str] | None) -> list[Candidate]:
        if not keys:
            return list(self.candidates.values())
        unknown = [k for k in keys if k not in self.candidates]
        if unknown:
            raise PlanError(f"unknown candidates {unknown}; the plan has {sorted(self.candidates)}")
        return [self.candidates[k] for k in keys]


def load_plan(path: Path | None = None) -> EvaluationPlan:
    """Parse and validate the plan; gate thresholds from env override the file's `[gates]`."""
    path = Path(path or DEFAULT_PLAN_PATH)
    if not path.is_file():
        raise PlanError(f"{path}: no such evaluation plan")
    raw = path.read_bytes()
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: not valid TOML: {exc}") from exc
    for key in ("agent", "tenant", "dataset"):
        if not isinstance(data.get(key), str):
            raise PlanError(f"{path}: top-level {key!r} (a string) is required")
    try:
        gates = GateThresholds(
            **{**data.get("gates", {}), **GateThresholds().model_dump(exclude_unset=True)}
        )
    except ValidationError as exc:
        raise PlanError(f"{path}: [gates]: {exc}") from exc
    default_repeats = int(data.get("repeats", 1))
    plan = EvaluationPlan(
        agent=data["agent"],
        tenant=data["tenant"],
        dataset_path=(path.parent / data["dataset"]).resolve(),
        gates=gates,
        path=path,
        content_hash=hashlib.sha256(raw).hexdigest()[:12],
    )
    tables = data.get("candidates", {})
    if not tables:
        raise PlanError(f"{path}: no [candidates.<name>] tables")
    for key, table in tables.items():
        config_fields = {k: v for k, v in table.items() if k not in _EVAL_KEYS}
        try:
            config = AgentConfig(name=plan.agent, **config_fields)
        except ValidationError as exc:
            raise PlanError(f"{path}: [candidates.{key}]: {exc}") from exc
        plan.candidates[key] = Candidate(
            key=key,
            config=config,
            max_examples=table.get("max_examples"),
            repeats=int(table.get("repeats", default_repeats)),
        )
    return plan
