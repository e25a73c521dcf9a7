"""AgentRuntime end to end on a real index (built by the Dagster knowledge job), real prompts in
MLflow, the extractive model, SQLite memory: answers, refusals, sessions, validation, access."""

from __future__ import annotations

import re

import pytest
from opentelemetry import context as otel_context

from agent_platform.runtime.access import AccessPolicy
from agent_platform.runtime.errors import (
    NotAuthorizedError,
    RequestValidationError,
    UnknownTenantError,
)
from agent_platform.runtime.memory import MemoryScope
from agent_platform.runtime.response import MAX_INPUT_CHARS, AgentRequest
from agent_platform.runtime.workflow import RunContext

AGENT_TENANT = "handbook"  # indexed by the `agent_home` fixture (conftest.py)

REFUND_QUESTION = "How many days do I have to request a refund?"
PHASES = {
    "validate",
    "authorise",
    "load_context",
    "prepare_prompt",
    "execute_model",
    "validate_output",
    "store_and_update_memory",
}


@pytest.fixture
def runtime(make_runtime):
    return make_runtime()


def test_answers_with_citations_of_retrieved_chunks(runtime) -> None:
    response = runtime.run(tenant=AGENT_TENANT, user="alice", input=REFUND_QUESTION)

    assert "within 30 days of delivery" in response.answer
    assert re.search(r"\[\d\]", response.answer)
    assert not response.refused
    assert response.model == "extractive"
    assert [c.source for c in response.citations] == ["refunds.md"]
    used = {c.chunk_id: c for c in response.retrieved if c.used}
    citation = response.citations[0]
    assert citation.chunk_id in used and citation.score == used[citation.chunk_id].score
    assert citation.score >= 0.7  # hybrid mode's default relevance threshold
    relevant = [c.chunk_id for c in response.retrieved if c.score >= 0.7]
    assert len(relevant) >= 2  # several sources reached the model; only the refund one is cited
    assert [c.chunk_id for c in response.retrieved if c.used] == relevant  # 16k tokens fit all
    # Prompts: system from production, user prompt never promoted → candidate fallback.
    assert (response.prompt.name, response.prompt.version) == ("grounded_qa_system", 1)
    assert response.prompt.alias == "production" and response.prompt.variant is None
    assert response.user_prompt is not None and response.user_prompt.alias == "candidate"
    assert response.usage.input_tokens > 100 and response.usage.output_tokens > 5
    assert response.cost == 0.0
    assert set(response.latency_ms) >= PHASES
    phase_sum = sum(response.latency_ms[p] for p in PHASES)
    assert phase_sum <= response.latency_ms["total"] + 1e-6
    assert re.fullmatch(r"[0-9a-f]{32}", response.trace_id) and int(response.trace_id, 16)
    assert response.state_version == 1 and response.agent == "default-agent"


def test_unanswerable_question_is_refused_without_citations(runtime) -> None:
    response = runtime.run(tenant=AGENT_TENANT, user="alice", input="Who painted the Mona Lisa?")
    assert response.refused
    assert response.citations == []
    assert "don't know" in response.answer or "could not find" in response.answer
    assert response.state_version == 1  # a refusal is still a turn


def test_every_turn_is_a_version_and_rollback_restores_one(runtime) -> None:
    first = runtime.run(tenant=AGENT_TENANT, user="bob", input=REFUND_QUESTION)
    session = first.session_id
    second = runtime.run(
        tenant=AGENT_TENANT,
        user="bob",
        input="How long does standard shipping take?",
        session_id=session,
    )
    assert (first.state_version, second.state_version) == (1, 2)
    assert "3 to 5 business days" in second.answer

    restored = runtime.rollback(session, 1, tenant=AGENT_TENANT, user="bob")
    assert restored.version == 3 and restored.restored_from == 1
    assert [t.content for t in restored.turns] == [REFUND_QUESTION, first.answer]
    scope = MemoryScope(AGENT_TENANT, "bob", session)
    refilled = runtime.services.short_term.recent(scope)
    assert [m.content for m in refilled] == [REFUND_QUESTION, first.answer]
    assert [m.metadata["trace_id"] for m in refilled] == [first.trace_id] * 2

    third = runtime.run(
        tenant=AGENT_TENANT, user="bob", input="When is the support desk open?", session_id=session
    )
    assert third.state_version == 4
    turns = runtime.conversation(session, tenant=AGENT_TENANT, user="bob").turns
    assert [t.content for t in turns][::2] == [REFUND_QUESTION, "When is the support desk open?"]
    assert turns[-1].metadata["trace_id"] == third.trace_id
    infos = runtime.history(session, tenant=AGENT_TENANT, user="bob")
    assert [(i.version, i.turn_count, i.restored_from) for i in infos] == [
        (1, 2, None),
        (2, 4, None),
        (3, 2, 1),
        (4, 4, None),
    ]
    with pytest.raises(LookupError, match="has no version 9"):
        runtime.rollback(session, 9, tenant=AGENT_TENANT, user="bob")
    assert len(runtime.services.short_term.recent(scope)) == 4  # a failed rollback changes nothing


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"input": ""}, "input", "at least 1 character"),
        ({"input": "   "}, "input", "at least 1 character"),
        ({"input": "x" * (MAX_INPUT_CHARS + 1)}, "input", f"at most {MAX_INPUT_CHARS}"),
        ({"input": 42}, "input", "valid string"),
        ({"tenant": "Bad Tenant!"}, "tenant", "pattern"),
        ({"user": ""}, "user", "at least 1 character"),
    ],
)
def test_bad_requests_name_the_field(runtime, overrides, field, message) -> None:
    request = {"tenant": AGENT_TENANT, "user": "carol", "input": REFUND_QUESTION, **overrides}
    with pytest.raises(RequestValidationError, match=message) as info:
        runtime.run(**request)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert info.value.phase == "validate" and info.value.trace_id
    logged = [r for r in runtime.request_log.read() if r["trace_id"] == info.value.trace_id]
    assert logged and logged[0]["outcome"] == "RequestValidationError"


def test_unknown_tenant_and_unauthorised_user_are_refused(make_runtime) -> None:
    runtime = make_runtime(access=AccessPolicy({AGENT_TENANT: ["alice"]}))
    with pytest.raises(UnknownTenantError, match="unknown tenant 'nobody'"):
        runtime.run(tenant="nobody", user="alice", input=REFUND_QUESTION)
    with pytest.raises(NotAuthorizedError, match="'mallory' is not authorised") as info:
        runtime.run(tenant=AGENT_TENANT, user="mallory", input=REFUND_QUESTION)
    assert info.value.phase == "authorise"
    failed = runtime.services.working.entries(AGENT_TENANT, "mallory")
    assert [e.value["status"] for e in failed] == ["failed"]
    assert failed[0].value["trace_id"] == info.value.trace_id
    assert failed[0].value["phase"] == "authorise"
    assert runtime.run(tenant=AGENT_TENANT, user="alice", input=REFUND_QUESTION).citations


def test_access_policy_file_is_read_when_it_changes(make_runtime, agent_settings) -> None:
    path = agent_settings.home_dir / "runtime" / "policy-test.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    policy = AccessPolicy(path=path)
    runtime = make_runtime(access=policy)
    assert policy.allowed_users(AGENT_TENANT) is None  # no file: open
    path.write_text('{"tenants": {"handbook": {"users": ["dave"]}}}')
    with pytest.raises(NotAuthorizedError):
        runtime.run(tenant=AGENT_TENANT, user="erin", input=REFUND_QUESTION)
    assert runtime.run(tenant=AGENT_TENANT, user="dave", input=REFUND_QUESTION).citations


def test_facts_the_user_asks_to_keep_go_to_long_term_memory(runtime) -> None:
    runtime.run(
        tenant=AGENT_TENANT, user="frank", input="Remember that my deployment region is eu-west-1."
    )
    recalled = runtime.services.long_term.recall(AGENT_TENANT, "frank", "which region do I use?")
    assert recalled and recalled[0].text == "my deployment region is eu-west-1."
    assert recalled[0].metadata["user"] == "frank"
    assert runtime.services.long_term.recall(AGENT_TENANT, "grace", "which region do I use?") == []
    assert AGENT_TENANT in runtime.services.long_term.store.tenants()  # the memory namespace
    hits = runtime.services.knowledge.search(AGENT_TENANT, "deployment region eu-west-1", k=20)
    assert all(not h.chunk_id.startswith("mem-") for h in hits)  # the knowledge index is clean
    # The recalled fact reaches the model's system message (the real phases, step by step).
    run = RunContext("0" * 32, otel_context.get_current(), "s-memory")
    run.request = AgentRequest(tenant=AGENT_TENANT, user="frank", input="Which region do I use?")
    run.scope = MemoryScope(AGENT_TENANT, "frank", "s-memory")
    context = runtime.services.load_context(run)
    assert context["memories"] == ["my deployment region is eu-west-1."]
    system = runtime.services.prepare_prompt(run, context)["messages"][0].content
    assert system.endswith("- my deployment region is eu-west-1.")


def test_the_old_access_file_is_no_longer_read(make_runtime, agent_settings, caplog) -> None:
    """The Rego policy decides who uses a tenant (tests/security); a leftover access.json only
    earns a warning, it neither opens nor closes a tenant."""
    path = agent_settings.home_dir / "runtime" / "access.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"tenants": {"handbook": {"users": ["dave"]}}}')
    try:
        with caplog.at_level("WARNING"):
            runtime = make_runtime()
        assert "runtime/access.json is no longer read" in caplog.text
        assert runtime.run(tenant=AGENT_TENANT, user="erin", input=REFUND_QUESTION).citations
    finally:
        path.unlink()
