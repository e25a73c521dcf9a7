"""Context packing: relevance threshold, chunk budget, memory, sliding conversation window."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from agent_platform.runtime.agent_config import RetrievalConfig
from agent_platform.runtime.context_window import (
    MIN_RELEVANCE,
    OPTIMAL_RELEVANCE,
    ContextBudgetError,
    ContextSelection,
    RetrievedChunk,
    pack_context,
)
from agent_platform.runtime.grounding import min_relevance, optimal_relevance
from agent_platform.runtime.models.extractive import ExtractiveAnswerer
from agent_platform.runtime.sources import parse_sources
from agent_platform.runtime.tokens import count_message_tokens


def turns(n: int) -> list:
    out = []
    for i in range(n):
        out.append(HumanMessage(f"question number {i} " + "word " * 20))
        out.append(AIMessage(f"answer number {i} " + "word " * 20))
    return out


CHUNKS = [
    RetrievedChunk("a.md", "Refunds are accepted within 30 days of purchase.", 0.92),
    RetrievedChunk("b.md", "The office cat is called Miso.", 0.41),
    RetrievedChunk("c.md", "Refund requests need the order number.", 0.70),
    RetrievedChunk("d.md", "Shipping takes a week.", 0.69),
]


def test_drops_chunks_below_min_relevance_and_orders_by_score() -> None:
    packed = pack_context(
        system_prompt="Answer from the sources.", question="How do refunds work?", chunks=CHUNKS
    )
    assert [c.source for c in packed.chunks] == ["a.md", "c.md"]  # 0.70 is kept, 0.69 is not
    assert {c.source for c in packed.dropped_low_relevance} == {"b.md", "d.md"}
    system = packed.messages[0]
    assert isinstance(system, SystemMessage)
    assert [(s.number, s.source) for s in parse_sources(system.content)] == [
        (1, "a.md"),
        (2, "c.md"),
    ]
    assert packed.messages[-1] == HumanMessage("How do refunds work?")
    # The packed messages are what the extractive answerer reads.
    answer = ExtractiveAnswerer().invoke(packed.messages).content
    assert "[1]" in answer


def test_keeps_the_newest_turns_within_budget() -> None:
    history = turns(50)  # ~2,500 tokens of conversation
    packed = pack_context(
        system_prompt="You are helpful.",
        question="And now?",
        conversation=history,
        max_tokens=1000,
        reserve_output_tokens=200,
    )
    window = packed.messages[1:-1]
    assert 0 < len(window) < len(history)
    assert window == history[-len(window) :]  # a suffix: newest kept, oldest dropped
    assert packed.dropped_turns == len(history) - len(window)
    assert packed.used_tokens <= packed.budget_tokens == 800
    assert count_message_tokens(packed.messages) <= 800


def test_chunks_share_the_budget_with_memory_and_history() -> None:
    big = [RetrievedChunk(f"{i}.md", "relevant text " * 60, 0.9 - i * 0.01) for i in range(10)]
    packed = pack_context(
        system_prompt="Sys.",
        question="Q?",
        chunks=big,
        memory=["The user prefers short answers."],
        conversation=turns(3),
        max_tokens=1200,
        reserve_output_tokens=200,
        max_chunk_share=0.5,
    )
    assert 0 < len(packed.chunks) < 10
    assert [c.source for c in packed.chunks] == [f"{i}.md" for i in range(len(packed.chunks))]
    assert len(packed.dropped_for_budget) == 10 - len(packed.chunks)
    assert "Memory:\n- The user prefers short answers." in packed.messages[0].content
    assert packed.dropped_turns == 0
    assert count_message_tokens(packed.messages) <= packed.budget_tokens


def test_strong_chunks_come_before_history_usable_ones_after() -> None:
    strong = RetrievedChunk("strong.md", "relevant text " * 40, 0.9)
    usable = RetrievedChunk("usable.md", "relevant text " * 40, 0.75)
    history = turns(4)  # ~200 tokens
    common = {"system_prompt": "Sys.", "question": "Q?", "reserve_output_tokens": 0}
    # Room for both chunks or for one chunk and the conversation: the strong chunk and the
    # conversation win, the merely usable chunk is dropped.
    packed = pack_context(**common, chunks=[usable, strong], conversation=history, max_tokens=400)
    assert [c.source for c in packed.chunks] == ["strong.md"]
    assert packed.dropped_for_budget == [usable] and packed.dropped_turns == 0
    # Without a conversation the usable chunk gets the room.
    alone = pack_context(**common, chunks=[usable, strong], max_tokens=400)
    assert [c.source for c in alone.chunks] == ["strong.md", "usable.md"]
    # With no optimum every relevant chunk is strong, and history is what gets squeezed.
    flat = pack_context(
        **common,
        chunks=[usable, strong],
        conversation=history,
        max_tokens=400,
        optimal_relevance=None,
    )
    assert [c.source for c in flat.chunks] == ["strong.md", "usable.md"]
    assert flat.dropped_turns > 0
    # An optimum below the minimum counts as the minimum: again every relevant chunk is strong.
    below = pack_context(
        **common,
        chunks=[usable, strong],
        conversation=history,
        max_tokens=400,
        min_relevance=0.7,
        optimal_relevance=0.1,
    )
    assert [c.source for c in below.chunks] == ["strong.md", "usable.md"]
    assert below.dropped_turns == flat.dropped_turns > 0
    # The packed context is the selection plus its messages: the kept turns are those sent.
    assert isinstance(packed, ContextSelection) and packed.turns == history
    assert packed.messages[1:-1] == history


def test_the_thresholds_are_the_hybrid_defaults_of_grounding() -> None:
    assert (MIN_RELEVANCE, OPTIMAL_RELEVANCE) == (0.7, 0.85)
    hybrid = RetrievalConfig(mode="hybrid", min_relevance=0.9)
    assert (min_relevance(hybrid), optimal_relevance(hybrid)) == (0.9, 0.85)  # select clamps
    assert optimal_relevance(RetrievalConfig(mode="vector")) is None


def test_defaults_and_bad_input() -> None:
    packed = pack_context(system_prompt="S", question="Q")
    assert packed.budget_tokens == 16_000 - 512
    with pytest.raises(ValueError, match=r"chunks\[0\].score: relevance must be in \[0, 1\]"):
        pack_context(system_prompt="S", question="Q", chunks=[RetrievedChunk("x", "t", 1.5)])
    with pytest.raises(ValueError, match="question: must not be empty"):
        pack_context(system_prompt="S", question="  ")
    with pytest.raises(ContextBudgetError, match="system prompt and question need"):
        pack_context(
            system_prompt="word " * 600, question="Q", max_tokens=600, reserve_output_tokens=100
        )
    with pytest.raises(ValueError, match="min_relevance"):
        pack_context(system_prompt="S", question="Q", min_relevance=2)
    with pytest.raises(ValueError, match=r"optimal_relevance: must be in \[0, 1\]"):
        pack_context(system_prompt="S", question="Q", optimal_relevance=1.5)
