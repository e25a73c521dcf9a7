"""The request and response of one agent run, as the Python API and the CLI return them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_INPUT_CHARS = 8_000


class AgentRequest(BaseModel):
    """Validated input of `AgentRuntime.run`; a bad field raises a ValidationError naming it."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    tenant: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    user: str = Field(min_length=1, max_length=128)
    input: str = Field(min_length=1, max_length=MAX_INPUT_CHARS)
    session_id: str | None = Field(default=None, min_length=1, max_length=128)


class Citation(BaseModel):
    """A source the answer cites; `number` is the `[n]` marker in the answer that cites it."""

    number: int = Field(ge=1, description="The answer's `[n]` marker for this source.")
    source: str
    chunk_id: str
    score: float


class PromptUsed(BaseModel):
    name: str
    version: int
    semver: str | None = None
    variant: str | None = None
    alias: str | None = Field(
        default=None,
        description="How the version was chosen: the alias (production, candidate), 'latest' "
        "(no alias points at a version yet) or 'v<n>' (pinned in the AgentConfig).",
    )


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


class RetrievedChunk(BaseModel):
    """A chunk that retrieval returned (kept for evaluation: recall@k, MRR, groundedness)."""

    source: str
    chunk_id: str
    score: float
    text: str
    used: bool = Field(description="Above the relevance threshold and given to the model.")


class ContextUsage(BaseModel):
    """How the prompt used the context budget, and what did not fit (see context_window.py)."""

    budget_tokens: int = Field(description="Prompt tokens the request could use.")
    prompt_tokens: int = Field(description="Tokens of the rendered prompt.")
    dropped_chunks: int = Field(description="Relevant chunks left out for lack of room.")
    dropped_turns: int = Field(description="Older conversation turns left out.")
    dropped_memories: int = Field(description="Long-term memories left out.")
    flagged_chunks: list[str] = Field(
        default_factory=list,
        description="Ids of retrieved chunks that read like instructions to the model or reader.",
    )
    flagged_action: str = Field(
        default="none", description="What the tenant policy did with them: dropped, quoted, none."
    )
    answer_pii: list[str] = Field(
        default_factory=list, description="Personal-data types the model's answer held."
    )
    answer_pii_action: str = Field(
        default="none", description="What the tenant policy did with them: masked, refused, none."
    )
    relayed_instruction_refused: bool = Field(
        default=False,
        description="The model's answer relayed an instruction from a source and was refused.",
    )


class AgentResponse(BaseModel):
    answer: str
    citations: list[Citation]
    model: str
    prompt: PromptUsed = Field(description="The system prompt (the A/B-tested one).")
    user_prompt: PromptUsed | None = None
    usage: Usage
    cost: float
    latency_ms: dict[str, float] = Field(description="By phase, plus 'total'.")
    trace_id: str
    session_id: str
    state_version: int
    refused: bool = Field(description="True when the agent said the sources do not answer.")
    retrieved: list[RetrievedChunk] = Field(default_factory=list)
    agent: str = Field(description="The AgentConfig name that served the request.")
    context: ContextUsage | None = None
