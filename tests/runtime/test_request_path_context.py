"""The request path end to end on the real runtime (index, prompts, extractive model, SQLite
memory): context packing into the budget, history from short-term memory, and resource guards.

What the model reads is recorded with a LangChain callback handler on a real `ExtractiveAnswerer`,
registered through the catalogue's public `register_model`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage

from agent_platform.runtime.config import ContextSettings
from agent_platform.runtime.errors import ResourceUnavailableError
from agent_platform.runtime.memory import MemoryScope
from agent_platform.runtime.models.extractive import ExtractiveAnswerer
from agent_platform.runtime.sources import parse_sources
from agent_platform.runtime.tokens import count_message_tokens
from agent_platform.tenants import TenantRegistry

TENANT = "handbook"  # indexed by the `agent_home` fixture (conftest.py)
REFUND_QUESTION = "How many days do I have to request a refund?"
EARLIER = [
    "How long does standard shipping take?",
    "When is the support desk open?",
    "How often are passwords rotated?",
    "When does express shipping deliver?",
]


class Recorder(BaseCallbackHandler):
    """Keeps the messages of every chat-model call."""

    def __init__(self) -> None:
        self.calls: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.calls.append(list(messages[0]))


def prepare_prompt_span(runtime, trace_id: str) -> dict[str, Any]:
    """The attributes of the request's exported `agent.prepare_prompt` span."""
    runtime.telemetry.provider.force_flush()
    path = runtime.settings.home_dir / "telemetry" / "traces.jsonl"
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    (span,) = [
        s
        for s in spans
        if s["name"] == "agent.prepare_prompt"
        and s["context"]["trace_id"].removeprefix("0x") == trace_id
    ]
    return span["attributes"]


def recording(runtime) -> Recorder:
    recorder = Recorder()
    runtime.catalogue.register_model("extractive", ExtractiveAnswerer(callbacks=[recorder]))
    return recorder


def test_a_small_budget_drops_chunks_and_old_turns_but_still_answers(make_runtime) -> None:
    # 586 - 256 reserved for the output (the agent's max_output_tokens) = 330 prompt tokens.
    runtime = make_runtime(context=ContextSettings(max_tokens=586, reserve_output_tokens=0))
    assert runtime.services.context_budget == 330
    recorder = recording(runtime)
    session = runtime.run(tenant=TENANT, user="pack", input=EARLIER[0]).session_id
    for question in EARLIER[1:]:
        runtime.run(tenant=TENANT, user="pack", input=question, session_id=session)

    response = runtime.run(tenant=TENANT, user="pack", input=REFUND_QUESTION, session_id=session)

    assert "within 30 days of delivery" in response.answer
    assert [c.source for c in response.citations] == ["refunds.md"]
    system, user = recorder.calls[-1]
    assert count_message_tokens(recorder.calls[-1]) <= 330
    given = [s.source for s in parse_sources(system.content)]
    relevant = [c for c in response.retrieved if c.score >= 0.7]
    assert given[0] == "refunds.md"  # the best chunk is packed first
    assert len(relevant) >= 3 and 0 < len(given) < len(relevant)  # the rest did not fit
    assert [c.source for c in response.retrieved if c.used] == given
    # The sliding window: the newest earlier question is there, the oldest was dropped.
    assert "Conversation so far" in user.content
    assert EARLIER[-1] in user.content and EARLIER[0] not in user.content
    # The response says what the budget held back, and so does the prepare_prompt span.
    context = response.context
    assert context is not None
    assert context.budget_tokens == 330
    assert context.prompt_tokens == count_message_tokens(recorder.calls[-1])
    assert context.dropped_chunks == len(relevant) - len(given)
    kept_turns = sum(q in user.content for q in EARLIER)
    assert context.dropped_turns == 2 * (len(EARLIER) - kept_turns) > 0
    assert context.dropped_memories == 0
    span = prepare_prompt_span(runtime, response.trace_id)
    assert {k: span[f"agent_platform.context.{k}"] for k in context.model_dump()} == (
        context.model_dump()
    )
    # The same request with the default 16k budget gets every relevant chunk and all turns.
    roomy = make_runtime()
    roomy_recorder = recording(roomy)
    roomy_response = roomy.run(
        tenant=TENANT, user="pack", input=REFUND_QUESTION, session_id=session
    )
    roomy_system, roomy_user = roomy_recorder.calls[-1]
    assert len(parse_sources(roomy_system.content)) == len(relevant)
    assert all(q in roomy_user.content for q in EARLIER)
    roomy_context = roomy_response.context
    assert roomy_context is not None and roomy_context.budget_tokens > 330
    assert (roomy_context.dropped_chunks, roomy_context.dropped_turns) == (0, 0)
    assert roomy_response.model_dump(mode="json")["context"] == roomy_context.model_dump()


def test_history_comes_from_short_term_memory_then_the_conversation_store(make_runtime) -> None:
    runtime = make_runtime()
    recorder = recording(runtime)
    first = runtime.run(tenant=TENANT, user="hist", input=EARLIER[0])
    assert "Conversation so far" not in recorder.calls[-1][1].content  # a new session
    runtime.run(tenant=TENANT, user="hist", input=REFUND_QUESTION, session_id=first.session_id)
    assert f"user: {EARLIER[0]}" in recorder.calls[-1][1].content
    assert f"assistant: {first.answer}" in recorder.calls[-1][1].content

    # Short-term memory is what is read: a turn only it holds reaches the model.
    scope = MemoryScope(TENANT, "hist", first.session_id)
    short_term = runtime.services.short_term
    short_term.clear(scope)
    short_term.add(scope, "user", "A turn only short-term memory knows about.")
    runtime.run(tenant=TENANT, user="hist", input=REFUND_QUESTION, session_id=first.session_id)
    history = recorder.calls[-1][1].content
    assert "A turn only short-term memory knows about." in history
    assert EARLIER[0] not in history

    # Once short-term memory has nothing (expired), the conversation store fills in.
    short_term.clear(scope)
    runtime.run(tenant=TENANT, user="hist", input=REFUND_QUESTION, session_id=first.session_id)
    history = recorder.calls[-1][1].content
    assert f"user: {EARLIER[0]}" in history
    assert "A turn only short-term memory knows about." not in history


def test_a_registered_tenant_without_an_index_is_unavailable(
    make_runtime, agent_settings, tmp_path
) -> None:
    TenantRegistry(agent_settings.tenant_registry_path).register("not-indexed-yet", tmp_path)
    runtime = make_runtime()
    with pytest.raises(ResourceUnavailableError, match="'not-indexed-yet' has no knowledge index"):
        runtime.run(tenant="not-indexed-yet", user="alice", input=REFUND_QUESTION)
    logged = [r for r in runtime.request_log.read() if r.get("tenant") == "not-indexed-yet"]
    assert [(r["outcome"], r["phase"]) for r in logged] == [
        ("ResourceUnavailableError", "authorise")
    ]
