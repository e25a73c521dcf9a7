"""Evaluation fixtures: a migrated MLflow database copied per test, hand-built responses, and a
copy of the session's sample home (tests/conftest.py: the sample tenant indexed once)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent_platform.runtime.response import (
    AgentResponse,
    Citation,
    PromptUsed,
    RetrievedChunk,
    Usage,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATASET = PROJECT_ROOT / "evaluation" / "datasets" / "sample.jsonl"


@pytest.fixture
def eval_settings(mlflow_settings):
    """`settings` with a ready MLflow store (see tests/conftest.py)."""
    return mlflow_settings


def make_response(
    answer: str,
    chunks: list[tuple[str, str]] = (),
    *,
    refused: bool = False,
    cite: list[int] | None = None,
    latency: float = 10.0,
) -> AgentResponse:
    """A response as the runtime returns it: `chunks` are (source, text), all used."""
    retrieved = [
        RetrievedChunk(source=s, chunk_id=f"c{i}", score=0.9 - i / 10, text=t, used=True)
        for i, (s, t) in enumerate(chunks)
    ]
    cited = cite if cite is not None else ([1] if chunks and not refused else [])
    return AgentResponse(
        answer=answer,
        citations=[
            Citation(number=n, source=retrieved[n - 1].source, chunk_id=f"c{n - 1}", score=0.9)
            for n in cited
            if 0 < n <= len(retrieved)
        ],
        model="extractive",
        prompt=PromptUsed(name="grounded_qa_system", version=1),
        usage=Usage(input_tokens=100, output_tokens=20),
        cost=0.0,
        latency_ms={"total": latency},
        trace_id="t",
        session_id="s",
        state_version=1,
        refused=refused,
        retrieved=retrieved,
        agent="grounded-qa",
    )


@pytest.fixture
def home(sample_home: Path, platform_home: Path) -> Path:
    shutil.rmtree(platform_home)
    shutil.copytree(sample_home, platform_home)
    return platform_home
