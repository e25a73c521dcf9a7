"""Pack a system prompt, memory, retrieved chunks and the conversation into a model's budget.

Relevance scale. A retrieved chunk carries `score` in [0, 1], higher is more relevant: the
vector store's `SearchHit.score`. In the default hybrid mode it is Reciprocal Rank Fusion of the
vector and BM25 rankings normalised by its maximum (`agent_platform.runtime.grounding` explains
the scale): 1.0 = first in both rankings, 0.5 = first in one and absent from the other.
The spec's two numbers live on that scale:

* `min_relevance` 0.70, the minimum: a chunk below it is never packed (both retrievers must rank
  it in roughly their top 25). A weak chunk costs tokens and invites answers from noise.
* `optimal_relevance` 0.85, the optimum: a chunk at or above it is a strong match (both rank it in
  roughly their top 12, or one first and the other in its top 27). Strong chunks are packed
  before memory and the conversation; chunks between the two thresholds are merely usable and
  only get the room that memory and the conversation leave. `None` (or a value at or below
  `min_relevance`) makes every relevant chunk strong: the vector and keyword modes do so, their
  scales having no calibrated optimum.

Budget. `max_tokens` minus `reserve_output_tokens` is shared, in priority order:
1. the system prompt and the question: always kept (an error if they alone do not fit);
2. strong chunks, best first, up to `max_chunk_share` of what remains after 1;
3. memory snippets, in the order given (the caller ranks them);
4. the conversation, as a sliding window: the newest turns are kept, oldest dropped first;
5. usable chunks, best first, in what is left (chunks together still within `max_chunk_share`).
Kept chunks are numbered best first whatever their tier.

`select_context` does the choosing for any prompt layout, given what each part costs;
`pack_context` uses it to build plain messages (the runtime's `prepare_prompt` uses it with the
costs of its registered templates). Tokens are counted with
`agent_platform.runtime.tokens.count_tokens` (conservative) unless a model-specific counter is
passed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, runtime_checkable

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from agent_platform.runtime.grounding import DEFAULT_MIN_RELEVANCE, DEFAULT_OPTIMAL_RELEVANCE
from agent_platform.runtime.sources import format_sources
from agent_platform.runtime.tokens import MESSAGE_OVERHEAD_TOKENS, count_tokens, message_text

TokenCounter = Callable[[str], int]
MIN_RELEVANCE = DEFAULT_MIN_RELEVANCE["hybrid"]  # the spec's numbers are on the hybrid scale
OPTIMAL_RELEVANCE = DEFAULT_OPTIMAL_RELEVANCE["hybrid"]


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


C = TypeVar("C", bound=ScoredChunk)
T = TypeVar("T")


@dataclass
class ContextSelection(Generic[C, T]):
    """What fits: chunks (best first), memory snippets, the newest turns, and what did not."""

    chunks: list[C]
    memory: list[str]
    turns: list[T]
    used_tokens: int
    budget_tokens: int
    dropped_low_relevance: list[C] = field(default_factory=list)
    dropped_for_budget: list[C] = field(default_factory=list)
    dropped_memory: int = 0
    dropped_turns: int = 0


@dataclass
class PackedContext(ContextSelection[ScoredChunk, BaseMessage]):
    """What `select_context` chose, and the messages built from it."""

    messages: list[BaseMessage] = field(default_factory=list)


@dataclass(frozen=True)
class Costs(Generic[C, T]):
    """Tokens each part takes in the prompt; a `*_header` is paid once, with the first item."""

    chunk: Callable[[C], int]
    memory: Callable[[str], int]
    turn: Callable[[T], int]
    chunk_header: int = 0
    memory_header: int = 0
    turn_header: int = 0


def _check_relevance(min_relevance: float, optimal_relevance: float | None) -> None:
    if not 0.0 <= min_relevance <= 1.0:
        raise ValueError(f"min_relevance: must be in [0, 1], got {min_relevance}")
    if optimal_relevance is not None and not 0.0 <= optimal_relevance <= 1.0:
        raise ValueError(f"optimal_relevance: must be in [0, 1], got {optimal_relevance}")


def select_context(
    *,
    budget_tokens: int,
    fixed_tokens: int,
    costs: Costs[C, T],
    chunks: Sequence[C] = (),
    memory: Sequence[str] = (),
    conversation: Sequence[T] = (),
    min_relevance: float = MIN_RELEVANCE,
    optimal_relevance: float | None = OPTIMAL_RELEVANCE,
    max_chunk_share: float = 0.6,
) -> ContextSelection[C, T]:
    """Choose what fits `budget_tokens` after the `fixed_tokens` (system prompt and question),
    in the priority order of the module docstring. Each turn's cost is computed once."""
    _check_relevance(min_relevance, optimal_relevance)
    if not 0.0 < max_chunk_share <= 1.0:
        raise ValueError(f"max_chunk_share: must be in (0, 1], got {max_chunk_share}")
    for index, chunk in enumerate(chunks):
        if not 0.0 <= chunk.score <= 1.0:
            raise ValueError(
                f"chunks[{index}].score: relevance must be in [0, 1], got {chunk.score}"
            )
    if fixed_tokens > budget_tokens:
        raise ContextBudgetError(
            f"system prompt and question need {fixed_tokens} tokens; the budget is {budget_tokens}"
        )
    used = fixed_tokens
    relevant = sorted((c for c in chunks if c.score >= min_relevance), key=lambda c: -c.score)
    low = [c for c in chunks if c.score < min_relevance]
    strong_floor = max(min_relevance, optimal_relevance or 0.0)
    chunk_room = int((budget_tokens - used) * max_chunk_share)
    kept: list[C] = []

    def pack_chunks(candidates: list[C]) -> None:
        nonlocal used, chunk_room
        for chunk in candidates:
            cost = costs.chunk(chunk) + (0 if kept else costs.chunk_header)
            if cost <= chunk_room and used + cost <= budget_tokens:
                kept.append(chunk)
                used += cost
                chunk_room -= cost

    pack_chunks([c for c in relevant if c.score >= strong_floor])

    kept_memory: list[str] = []
    for snippet in memory:
        cost = costs.memory(snippet) + (0 if kept_memory else costs.memory_header)
        if used + cost <= budget_tokens:
            kept_memory.append(snippet)
            used += cost

    window: list[T] = []
    for turn in reversed(conversation):
        cost = costs.turn(turn) + (0 if window else costs.turn_header)
        if used + cost > budget_tokens:
            break
        window.append(turn)
        used += cost
    window.reverse()

    pack_chunks([c for c in relevant if c.score < strong_floor])
    kept_ids = {id(c) for c in kept}
    return ContextSelection(
        chunks=kept,
        memory=kept_memory,
        turns=window,
        used_tokens=used,
        budget_tokens=budget_tokens,
        dropped_low_relevance=low,
        dropped_for_budget=[c for c in relevant if id(c) not in kept_ids],
        dropped_memory=len(memory) - len(kept_memory),
        dropped_turns=len(conversation) - len(window),
    )


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
    min_relevance: float = MIN_RELEVANCE,
    optimal_relevance: float | None = OPTIMAL_RELEVANCE,
    max_chunk_share: float = 0.6,
    token_counter: TokenCounter = count_tokens,
) -> PackedContext:
    """Messages `[system (prompt + memory + sources), *newest turns, human question]`."""
    if max_tokens <= reserve_output_tokens:
        raise ValueError(
            f"max_tokens ({max_tokens}) must exceed reserve_output_tokens ({reserve_output_tokens})"
        )
    if not question.strip():
        raise ValueError("question: must not be empty")
    budget = max_tokens - reserve_output_tokens
    header = token_counter(format_sources([])) + 1
    costs: Costs[ScoredChunk, BaseMessage] = Costs(
        chunk=lambda c: token_counter(format_sources([(c.source, c.text)])) - header + 1,
        memory=lambda m: token_counter(m) + 2,
        turn=lambda m: _tokens(message_text(m), token_counter),
        chunk_header=header,
        memory_header=token_counter("Memory:"),
    )
    try:
        chosen = select_context(
            budget_tokens=budget,
            fixed_tokens=_tokens(system_prompt, token_counter) + _tokens(question, token_counter),
            costs=costs,
            chunks=chunks,
            memory=memory,
            conversation=conversation,
            min_relevance=min_relevance,
            optimal_relevance=optimal_relevance,
            max_chunk_share=max_chunk_share,
        )
    except ContextBudgetError as exc:
        raise ContextBudgetError(
            f"{exc} (max_tokens {max_tokens} - reserve_output_tokens {reserve_output_tokens})"
        ) from None
    system_parts = [system_prompt.strip()]
    if chosen.memory:
        system_parts.append("Memory:\n" + "\n".join(f"- {m}" for m in chosen.memory))
    if chosen.chunks:
        system_parts.append(format_sources([(c.source, c.text) for c in chosen.chunks]))
    messages: list[BaseMessage] = [
        SystemMessage("\n\n".join(p for p in system_parts if p)),
        *chosen.turns,
        HumanMessage(question),
    ]
    return PackedContext(**vars(chosen), messages=messages)
