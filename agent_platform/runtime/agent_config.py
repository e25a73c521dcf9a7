"""`AgentConfig`: one deployable agent configuration, the unit that is evaluated and promoted.

It pins everything that changes an answer: which models and routing strategy, which prompt
versions, and how retrieval is done. Evaluation runs a config through the real runtime; the MLflow
registry stores it as an agent model version.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_platform.runtime.config import RoutingStrategy

RetrievalMode = Literal["vector", "keyword", "hybrid"]


class PromptRef(BaseModel):
    """A prompt by name, pinned to a version or resolved through an alias."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    alias: str = "production"
    version: int | None = Field(default=None, ge=1, description="Overrides `alias` when set.")


class RetrievalConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    k: int = Field(default=5, ge=1, le=100)
    mode: RetrievalMode = "hybrid"
    min_relevance: float = Field(
        default=0.7, ge=0, le=1, description="Chunks scoring below it are not given to the model."
    )


class AgentConfig(BaseModel):
    """What one agent model version is: models and routing, prompts, retrieval."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="default-agent", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    description: str = ""
    route: str = "default"
    models: list[str] | None = Field(
        default=None, description="Overrides the route's fallback chain when set."
    )
    strategy: RoutingStrategy | None = Field(
        default=None, description="Overrides the route's strategy when set."
    )
    system_prompt: PromptRef = PromptRef(name="grounded_qa_system")
    user_prompt: PromptRef = PromptRef(name="grounded_qa_user")
    retrieval: RetrievalConfig = RetrievalConfig()
    max_output_tokens: int = Field(default=256, ge=1, le=8192)

    def fingerprint(self) -> str:
        """A stable hash of the configuration, for lineage tags and cache keys."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]
