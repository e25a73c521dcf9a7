"""The official `openai` client and LangChain's `ChatOpenAI` against the real server."""

from __future__ import annotations

import openai
from langchain_openai import ChatOpenAI

QUESTION = "How long do refunds take to be paid back?"


def _openai(gateway) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gateway.url}/v1",
        api_key="not-checked-yet",
        default_headers={"X-Tenant": "handbook"},
        max_retries=0,
    )


def test_openai_client_gets_a_grounded_answer_with_the_platform_fields(gateway):
    raw = _openai(gateway).chat.completions.with_raw_response.create(
        model="grounded-qa",
        messages=[{"role": "user", "content": QUESTION}],
        user="openai-user",
    )
    completion = raw.parse()
    answer = completion.choices[0].message.content
    assert "5 business days" in answer
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens > completion.usage.completion_tokens > 0
    platform = completion.model_extra["agent_platform"]
    assert platform["agent"] == "grounded-qa" and platform["agent_version"] == "default"
    assert platform["model"] == "extractive" and platform["refused"] is False
    assert platform["citations"][0]["source"].endswith("refunds.md")
    assert platform["state_version"] == 1
    assert raw.headers["x-trace-id"] == platform["trace_id"]
    assert raw.headers["x-agent-version"] == "default"


def test_openai_client_streams_the_same_answer_and_continues_the_session(gateway):
    client = _openai(gateway)
    first = client.chat.completions.create(
        model="grounded-qa", messages=[{"role": "user", "content": QUESTION}], user="streamer"
    )
    session = first.model_extra["agent_platform"]["session_id"]
    stream = client.chat.completions.create(
        model="grounded-qa",
        messages=[{"role": "user", "content": QUESTION}],
        user="streamer",
        stream=True,
        stream_options={"include_usage": True},
        metadata={"session_id": session},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["stop"]
    platform = finish[0].model_extra["agent_platform"]
    assert platform["session_id"] == session and platform["state_version"] == 2
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_langchain_chat_openai_invokes_and_streams(gateway):
    model = ChatOpenAI(
        model="grounded-qa",
        base_url=f"{gateway.url}/v1",
        api_key="not-checked-yet",
        default_headers={"X-Tenant": "handbook"},
        model_kwargs={"user": "langchain-user"},
        max_retries=0,
    )
    message = model.invoke(QUESTION)
    assert "5 business days" in message.content
    assert message.response_metadata["model_name"] == "grounded-qa"
    streamed = "".join(chunk.content for chunk in model.stream(QUESTION))
    assert streamed == message.content
