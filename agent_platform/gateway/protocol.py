"""Wire models: OpenAI's chat completion schema, the platform's extension object, and the
native routes' bodies. Only what crosses the wire lives here (no behaviour)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_platform.runtime.response import MAX_INPUT_CHARS, Citation, PromptUsed

MODEL_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}(@[A-Za-z0-9_-]{1,63})?$"
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"  # as `AgentRequest.tenant`
NOT_BLANK = r"\S"


class TextPart(BaseModel):
    """One part of a multi-part message; only text parts are understood."""

    type: Literal["text"]
    text: str = Field(max_length=100_000)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = Field(default=None)
    name: str | None = Field(default=None, max_length=128)

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's request. `model` names an agent (`grounded-qa`, `grounded-qa@challenger`,
    `grounded-qa@3`); the last user message is the input; sampling fields are accepted and
    ignored (the agent version pins its models and their settings)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(pattern=MODEL_PATTERN, examples=["grounded-qa"])
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    user: str | None = Field(default=None, min_length=1, max_length=128, pattern=NOT_BLANK)
    stream: bool = False
    stream_options: StreamOptions | None = None
    metadata: dict[str, str] | None = Field(
        default=None, description="`session_id` continues a session (default: a new one)."
    )
    n: Literal[1] | None = Field(default=None, description="Only one choice is produced.")
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def input_text(self) -> str | None:
        """The last user message (None when there is none)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text()
        return None


class PlatformExtension(BaseModel):
    """What the platform adds to a standard completion (`agent_platform` on the response and
    on a stream's last chunk)."""

    agent: str = Field(description="The registered agent that answered.")
    agent_version: str = Field(description="Its version number, or 'default' before promotion.")
    model: str = Field(description="The underlying model that produced the answer.")
    citations: list[Citation]
    trace_id: str
    session_id: str
    state_version: int
    refused: bool
    prompt: PromptUsed
    user_prompt: PromptUsed | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"] = "stop"
    logprobs: None = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    system_fingerprint: str | None = None
    agent_platform: PlatformExtension


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One Server-Sent Event of a streamed completion (`data: {...}`; the stream ends with
    `data: [DONE]`)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    agent_platform: PlatformExtension | None = None
    replaced_answer: str | None = Field(
        default=None,
        description="On the last chunk, only when the settled answer is not the streamed "
        "deltas continued (the answer guard changed it, or another model answered after the "
        "first one was streamed): the answer to show instead of the deltas.",
    )


class RunRequest(BaseModel):
    """The native contract's input: `AgentRuntime.run`'s arguments (tenant also from X-Tenant)."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(min_length=1, max_length=MAX_INPUT_CHARS, pattern=NOT_BLANK)
    user: str = Field(min_length=1, max_length=128, pattern=NOT_BLANK)
    tenant: str | None = Field(default=None, pattern=TENANT_PATTERN)
    session_id: str | None = Field(default=None, min_length=1, max_length=128)


class SessionVersion(BaseModel):
    version: int
    created_at: float
    turn_count: int
    restored_from: int | None = None


class SessionView(BaseModel):
    session_id: str
    tenant: str
    user: str
    current_version: int
    versions: list[SessionVersion]


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The version to make current again.")
    user: str = Field(min_length=1, max_length=128, pattern=NOT_BLANK)


class RollbackResult(BaseModel):
    session_id: str
    version: int = Field(description="The new current version (a copy of the restored one).")
    restored_from: int
    turn_count: int


class AgentView(BaseModel):
    """What `GET /v1/agents/{agent}` says about the version being served."""

    agent: str
    serving_version: str = Field(description="Version number, or 'default' before promotion.")
    aliases: dict[str, int] = Field(default_factory=dict)
    config: dict[str, Any]
    prompts: dict[str, PromptRefView]
    index_snapshot: str | None = None
    lineage: dict[str, str] = Field(default_factory=dict)
    evaluated: bool = False
    gates_passed: bool | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    policy_bundle: str | None = Field(
        default=None, description="Content hash of the authorization policy bundle in force."
    )


class PromptRefView(BaseModel):
    name: str
    alias: str | None = None
    version: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details (`application/problem+json`)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    trace_id: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="For 422: each invalid field (`loc`, `msg`)."
    )


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    reasons: list[str] = Field(default_factory=list)
    agent: str | None = None
    agent_version: str | None = None


AgentView.model_rebuild()
