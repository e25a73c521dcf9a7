"""Pack a system prompt, memory, retrieved chunks and the conversation into a model's budget.

Relevance scale. A retrieved chunk carries `score` in [0, 1], higher is more relevant: the
vector store's hybrid score (fusion of cosine similarity and BM25, each normalised to [0, 1] over
the candidates), the same scale its `SearchHit.score` uses for every mode. Chunks below
`min_relevance` (default 0.7) are dropped before packing: a weak chunk costs tokens and invites
the model to answer from noise.

Budget. `max_tokens` (default 16k) minus `reserve_output_tokens` is shared, in priority order:
1. the system prompt and the question: always kept (an error if they alone do not fit);
2. relevant chunks, best first, up to `max_chunk_share` of what remains (the rest go to history);
3. memory snippets, in the order given (the caller ranks them);
4. the conversation, as a sliding window: the newest turns are kept, oldest dropped first.

Tokens are counted with `agent_platform.runtime.tokens.count_tokens` (conservative) unless a
model-specific counter is passed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from agent_platform.runtime.sources import format_sources
from agent_platform.runtime.tokens import MESSAGE_OVERHEAD_TOKENS, count_tokens, message_text

TokenCounter = Callable[[str], int]


@runtime_checkable
class ScoredChunk(Protocol):
    """What packing needs of a retrieved chunk (the vector store's `SearchHit` fits)."""

    @property
    def source(self) -> str: ...

    @property
    def text(self) -> str: ...

    @property
    def score(self) -> float: ...


@dataclass(frozen=True)
class RetrievedChunk:
    """A plain retrieved chunk, for callers without a `SearchHit`."""

    source: str
    text: str
    score: float
    chunk_id: str = ""


class ContextBudgetError(ValueError):
    """The mandatory parts alone exceed the budget."""


@dataclass
class PackedContext:
    """The messages to send, and what was left out and why."""

    messages: list[BaseMessage]
    chunks: list[ScoredChunk]
    used_tokens: int
    budget_tokens: int
    dropped_low_relevance: list[ScoredChunk] = field(default_factory=list)
    dropped_for_budget: list[ScoredChunk] = field(default_factory=list)
    dropped_memory: int = 0
    dropped_turns: int = 0


def _tokens(text: str, counter: TokenCounter) -> int:
    return counter(text) + MESSAGE_OVERHEAD_TOKENS


def pack_context(
    *,
    system_prompt: str,
    question: str,
    conversation: Sequence[BaseMessage] = (),
    chunks: Sequence[ScoredChunk] = (),
    memory: Sequence[str] = (),
    max_tokens: int = 16_000,
    reserve_output_tokens: int = 512,
    min_relevance: float = 0.7,
    max_chunk_share: float = 0.6,
    token_counter: TokenCounter = count_tokens,
) -> PackedContext:
    """Messages `[system (prompt + memory + sources), *newest turns, human question]`."""
    if max_tokens <= reserve_output_tokens:
        raise ValueError(
            f"max_tokens ({max_tokens}) must exceed reserve_output_tokens ({reserve_output_tokens})"
        )
    if not 0.0 <= min_relevance <= 1.0:
        raise ValueError(f"min_relevance: must be in [0, 1], got {min_relevance}")
    if not 0.0 < max_chunk_share <= 1.0:
        raise ValueError(f"max_chunk_share: must be in (0, 1], got {max_chunk_share}")
    if not question.strip():
        raise ValueError("question: must not be empty")
    for index, chunk in enumerate(chunks):
        if not 0.0 <= chunk.score <= 1.0:
            raise ValueError(
                f"chunks[{index}].score: relevance must be in [0, 1], got {chunk.score}"
            )

    budget = max_tokens - reserve_output_tokens
    used = _tokens(system_prompt, token_counter) + _tokens(question, token_counter)
    if used > budget:
        raise ContextBudgetError(
            f"system prompt and question need {used} tokens; the budget is {budget} "
            f"(max_tokens {max_tokens} - reserve_output_tokens {reserve_output_tokens})"
        )

    relevant = sorted((c for c in chunks if c.score >= min_relevance), key=lambda c: -c.score)
    low = [c for c in chunks if c.score < min_relevance]
    kept: list[ScoredChunk] = []
    over_budget: list[ScoredChunk] = []
    chunk_budget = int((budget - used) * max_chunk_share)
    header = token_counter(format_sources([])) + 1 if relevant else 0
    chunk_used = header
    for chunk in relevant:
        cost = token_counter(format_sources([(chunk.source, chunk.text)])) - header + 1
        if chunk_used + cost <= chunk_budget:
            kept.append(chunk)
            chunk_used += cost
        else:
            over_budget.append(chunk)
    used += chunk_used if kept else 0

    kept_memory: list[str] = []
    for snippet in memory:
        cost = token_counter(snippet) + 2 + (0 if kept_memory else token_counter("Memory:"))
        if used + cost <= budget:
            kept_memory.append(snippet)
            used += cost
    dropped_memory = len(memory) - len(kept_memory)

    window: list[BaseMessage] = []
    for message in reversed(conversation):
        cost = _tokens(message_text(message), token_counter)
        if used + cost > budget:
            break
        window.append(message)
        used += cost
    window.reverse()

    system_parts = [system_prompt.strip()]
    if kept_memory:
        system_parts.append("Memory:\n" + "\n".join(f"- {m}" for m in kept_memory))
    if kept:
        system_parts.append(format_sources([(c.source, c.text) for c in kept]))
    messages: list[BaseMessage] = [
        SystemMessage("\n\n".join(p for p in system_parts if p)),
        *window,
        HumanMessage(question),
    ]
    return PackedContext(
        messages=messages,
        chunks=kept,
        used_tokens=used,
        budget_tokens=budget,
        dropped_low_relevance=low,
        dropped_for_budget=over_budget,
        dropped_memory=dropped_memory,
        dropped_turns=len(conversation) - len(window),
    )
