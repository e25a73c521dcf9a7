"""`AgentRuntime.astream`: what reaches a reader before the answer is final, and what is stored.

A hosted model that streams word by word is LangChain's `GenericFakeChatModel` (the stand-in for a
paid provider); Gemma's own token streaming is tested through the gateway
(tests/gateway/test_streaming.py) and its stop-string handling here."""

from __future__ import annotations

import json

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from agent_platform.runtime.catalogue import ModelSpec, default_models
from agent_platform.runtime.config import RouteSettings
from agent_platform.runtime.errors import RequestDeadlineError
from agent_platform.runtime.memory import MemoryScope
from agent_platform.runtime.models.gemma import STOP_STRINGS, StopScanner, _cut
from agent_platform.runtime.streaming import AnswerDelta, AnswerRelease, StreamedAnswer

TENANT = "handbook"  # indexed by the `agent_home` fixture (conftest.py)
QUESTION = "How many days do I have to request a refund?"


def test_gemma_stop_scanner_streams_exactly_what_invoke_returns() -> None:
    pieces = ["  Refunds", " take", " 5", " days", " [1].", "\n", "Us", "er: and", " more"]
    scanner, out = StopScanner(list(STOP_STRINGS)), []
    for piece in pieces:
        out.append(scanner.feed(piece))
    out.append(scanner.flush())
    assert "".join(out) == _cut("".join(pieces), list(STOP_STRINGS)) == "Refunds take 5 days [1]."
    assert out[4] == " [1]." and out[5] == ""  # the newline waits: it may start "\nUser:"


def test_release_holds_back_the_newest_words_and_stops_at_a_failed_check() -> None:
    release = AnswerRelease(lambda text: "@" not in text, hold_words=2)
    words = ["One", " two", " three", " four", " a@b.c", " x", " y", " z"]
    said = [release.feed("call-1", w) for w in words]
    assert said == ["", "", "One", " two", " three", " four", "", ""]  # "a@b.c" failed
    assert release.blocked
    assert release.finish("One two three four <EMAIL> x y z") == (" <EMAIL> x y z", False)
    other = AnswerRelease(lambda text: True, hold_words=1)
    assert [other.feed("call-1", w) for w in ["A", " b", " c"]] == ["", "A", " b"]
    assert other.feed("call-2", "Z z z") == ""  # a second model: what was said stays said
    assert other.finish("Z z z") == ("Z z z", True)


@pytest.fixture
def streaming_runtime(make_runtime):
    """The route is one hosted-style model that streams its answer word by word."""
    spec = ModelSpec(name="streamer", provider="fake", model="streamer", context_window=32_768)
    runtime = make_runtime(
        models=[*default_models(), spec], routes={"default": RouteSettings(models=["streamer"])}
    )
    answer = (
        "Refunds can be requested within 30 days of delivery [1]. The desk at "
        "refunds.desk@example.com answers questions about the order number and the reason."
    )
    runtime.catalogue.register_model(
        "streamer", GenericFakeChatModel(messages=iter([AIMessage(answer)]))
    )
    return runtime


async def test_streamed_words_join_to_the_stored_answer_and_never_show_personal_data(
    streaming_runtime,
) -> None:
    events = [
        e
        async for e in streaming_runtime.astream(
            tenant=TENANT, user="streamer", input=QUESTION, session_id="s-stream"
        )
    ]
    deltas = [e.text for e in events if isinstance(e, AnswerDelta)]
    final = events[-1]
    assert isinstance(final, StreamedAnswer) and not final.replaced
    assert len(deltas) >= 5  # word by word, not one chunk
    assert "example.com" not in "".join(deltas)  # held back, then masked in the answer
    assert "example.com" not in final.response.answer
    assert "".join(deltas) + final.remainder == final.response.answer
    state = streaming_runtime.conversation("s-stream", tenant=TENANT, user="streamer")
    assert state.turns[-1].content == final.response.answer
    assert [c.source for c in final.response.citations] == ["refunds.md"]


async def test_extractive_answers_in_one_event_and_a_passed_deadline_is_recorded(
    make_runtime, agent_settings
) -> None:
    runtime = make_runtime()
    [event] = [e async for e in runtime.astream(tenant=TENANT, user="x", input=QUESTION)]
    assert isinstance(event, StreamedAnswer) and event.remainder == event.response.answer

    with pytest.raises(RequestDeadlineError) as caught:
        async for _ in runtime.astream(tenant=TENANT, user="late", input=QUESTION, deadline_s=1e-4):
            pass
    log = (agent_settings.home_dir / "runtime" / "requests.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in log if caught.value.trace_id in line]
    assert [r["outcome"] for r in records] == ["DeadlineExceeded"]
    scope = MemoryScope(TENANT, "late", caught.value.session_id)
    assert runtime.services.conversation.versions(scope) == []  # cancelled: nothing stored
