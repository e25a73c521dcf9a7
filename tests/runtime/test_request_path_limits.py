"""One global limit on concurrent model calls, and answers rejected for their length."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from agent_platform.runtime.agent_config import AgentConfig
from agent_platform.runtime.catalogue import ModelSpec, default_models
from agent_platform.runtime.errors import ModelsFailedError
from agent_platform.runtime.phases import ModelSlots

TENANT = "handbook"  # indexed by the `agent_home` fixture (conftest.py)
QUESTION = "How many days do I have to request a refund?"


class Concurrency:
    """Counts, independently of ModelSlots, how many holders are inside at once."""

    def __init__(self) -> None:
        self.now = self.peak = self.done = 0
        self.lock = threading.Lock()

    def hold(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1
            self.done += 1


def test_threads_and_event_loops_share_one_limit() -> None:
    slots, seen = ModelSlots(2), Concurrency()

    def in_thread() -> None:
        with slots.sync():
            seen.hold()
            time.sleep(0.05)
            seen.leave()

    async def in_loop() -> None:
        async with slots.asynchronous():
            seen.hold()
            await asyncio.sleep(0.05)
            seen.leave()

    async def batch() -> None:
        await asyncio.gather(*(in_loop() for _ in range(3)))

    workers = [threading.Thread(target=in_thread) for _ in range(3)]
    workers += [threading.Thread(target=asyncio.run, args=(batch(),)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    assert seen.done == 9
    assert seen.peak == 2 and slots.peak == 2
    assert slots.in_use == 0


def test_a_cancelled_waiter_does_not_keep_a_slot() -> None:
    slots = ModelSlots(1)
    released = threading.Event()

    async def scenario() -> None:
        holder_in = asyncio.Event()

        async def holder() -> None:
            async with slots.asynchronous():
                holder_in.set()
                await asyncio.sleep(0.05)

        hold = asyncio.create_task(holder())
        await holder_in.wait()
        waiter = asyncio.create_task(slots.asynchronous().__aenter__())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await hold

    asyncio.run(scenario())

    def take() -> None:
        with slots.sync():
            released.set()

    threading.Thread(target=take, daemon=True).start()
    assert released.wait(timeout=5), "the slot of the cancelled waiter was never given back"
    assert slots.in_use == 0


@pytest.mark.parametrize("accepted", [False, True], ids=["before-accept", "after-accept"])
def test_a_waiter_cancelled_after_being_granted_passes_the_slot_on(accepted: bool) -> None:
    """The release hands the slot to the queued waiter (wake), which takes it on its loop
    (accept). A cancel that lands before accept runs makes accept pass the slot on; one that
    lands after, before the waiter resumes, makes the waiter give it back as it unwinds."""
    slots = ModelSlots(1)

    async def scenario() -> None:
        holder = slots.asynchronous()
        await holder.__aenter__()
        waiter = asyncio.create_task(slots.asynchronous().__aenter__())
        await asyncio.sleep(0)  # the waiter is queued
        await holder.__aexit__(None, None, None)  # the slot is handed over: accept is scheduled
        assert slots.in_use == 1
        if accepted:
            await asyncio.sleep(0)  # accept runs; the waiter is woken but has not resumed
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert slots.in_use == 0
        async with asyncio.timeout(2), slots.asynchronous():  # free at once for the next caller
            assert slots.in_use == 1

    asyncio.run(scenario())
    assert slots.in_use == 0


def verbose_model(runtime) -> None:
    """A stand-in for a hosted model that rambles far past max_output_tokens."""
    runtime.catalogue.register_model("verbose", FakeListChatModel(responses=["word " * 600]))


VERBOSE = ModelSpec(name="verbose", provider="openai", model="fake-verbose", context_window=8192)


def test_an_answer_that_is_too_long_is_rejected_and_the_next_model_answers(make_runtime) -> None:
    runtime = make_runtime(
        models=[*default_models(), VERBOSE],
        agent=AgentConfig(models=["verbose", "extractive"]),
    )
    verbose_model(runtime)
    response = runtime.run(tenant=TENANT, user="long", input=QUESTION)
    assert response.model == "extractive"
    assert "within 30 days of delivery" in response.answer

    only_verbose = make_runtime(
        models=[*default_models(), VERBOSE], agent=AgentConfig(models=["verbose"])
    )
    verbose_model(only_verbose)
    too_long = r"verbose: the answer has 600 tokens; the limit is 512"
    with pytest.raises(ModelsFailedError, match=too_long):
        only_verbose.run(tenant=TENANT, user="long", input=QUESTION)
