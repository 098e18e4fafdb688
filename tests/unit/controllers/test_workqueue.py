"""The AgentRun work queue: one pass per key at a time, events folded, delays on an injected clock,
retries with backoff, and only the keys this process owns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from jesus.controllers.workqueue import GiveUp, Key, Retry, WorkQueue
from jesus.kube import JsonObject

A, B = ("team", "a"), ("team", "b")


class Recorder:
    """A handler that records its passes; each pass can be held open, raise, or ask for a later look."""

    def __init__(self) -> None:
        self.passes: list[tuple[Key, JsonObject | None]] = []
        self.gate: asyncio.Event | None = None
        self.raises: list[Exception] = []
        self.next_look: float | None = None

    async def __call__(self, key: Key, body: JsonObject | None) -> float | None:
        self.passes.append((key, body))
        if self.gate is not None:
            await self.gate.wait()
        if self.raises:
            raise self.raises.pop(0)
        return self.next_look


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def world() -> AsyncIterator[tuple[WorkQueue, Recorder, Clock]]:
    handler, clock = Recorder(), Clock()
    queue = WorkQueue(handler, workers=4, clock=clock)
    queue.start()
    yield queue, handler, clock
    await queue.stop()


async def settle(queue: WorkQueue) -> None:
    for _ in range(5):
        await asyncio.sleep(0)
    await queue.idle()


async def test_events_for_a_queued_key_fold_into_one_pass_with_the_newest_body(
    world: tuple[WorkQueue, Recorder, Clock],
) -> None:
    queue, handler, _ = world
    queue.add(A, {"v": 1})
    queue.add(A, {"v": 2})
    queue.add(B)
    await settle(queue)
    assert sorted(handler.passes, key=str) == sorted([(A, {"v": 2}), (B, None)], key=str)


async def test_an_event_during_a_pass_brings_exactly_one_more_pass(
    world: tuple[WorkQueue, Recorder, Clock],
) -> None:
    queue, handler, _ = world
    handler.gate = asyncio.Event()
    queue.add(A, {"v": 1})
    await asyncio.sleep(0)
    queue.add(A, {"v": 2})
    queue.add(A, {"v": 3})
    await asyncio.sleep(0)
    assert handler.passes == [(A, {"v": 1})]  # never two passes over one key at once
    handler.gate.set()
    await settle(queue)
    assert handler.passes == [(A, {"v": 1}), (A, {"v": 3})]


async def test_a_later_look_waits_for_the_injected_clock(world: tuple[WorkQueue, Recorder, Clock]) -> None:
    queue, handler, clock = world
    handler.next_look = 10.0
    queue.add(A)
    await settle(queue)
    assert queue.scheduled(A) == 1010.0
    clock.now = 1009.0
    queue.advanced()
    await settle(queue)
    assert len(handler.passes) == 1
    handler.next_look = None
    clock.now = 1010.0
    queue.advanced()
    await settle(queue)
    assert len(handler.passes) == 2
    assert queue.scheduled(A) is None  # the second pass asked for no later look


async def test_failures_back_off_and_give_up_waits_for_the_next_event(
    world: tuple[WorkQueue, Recorder, Clock],
) -> None:
    queue, handler, clock = world
    handler.raises = [Retry("conflict"), Retry("conflict"), RuntimeError("bug"), GiveUp("invalid spec")]
    queue.add(A)
    await settle(queue)
    assert queue.scheduled(A) == clock.now + 1  # the first backoff
    for expected in (2.0, 5.0):
        clock.now = queue.scheduled(A) or 0
        queue.advanced()
        await settle(queue)
        assert queue.scheduled(A) == clock.now + expected  # an unexpected error backs off the same way
    clock.now = queue.scheduled(A) or 0
    queue.advanced()
    await settle(queue)
    assert len(handler.passes) == 4
    assert queue.scheduled(A) is None
    handler.raises = [Retry("the router is down", delay=0.5)]
    queue.add(A)
    await settle(queue)
    assert queue.scheduled(A) == clock.now + 0.5  # the handler's own delay wins


async def test_a_forgotten_key_is_not_looked_at_again(world: tuple[WorkQueue, Recorder, Clock]) -> None:
    queue, handler, clock = world
    handler.next_look = 5.0
    queue.add(A)
    await settle(queue)
    queue.forget(A)
    clock.now += 60
    queue.advanced()
    await settle(queue)
    assert len(handler.passes) == 1
    assert A not in queue.known()


async def test_only_owned_keys_are_reconciled_and_a_taken_over_shard_is_requeued() -> None:
    handler, owned = Recorder(), {A}
    queue = WorkQueue(handler, workers=2, owns=lambda key: key in owned)
    queue.start()
    try:
        queue.add(A)
        queue.track(B)
        queue.add(B)  # another replica's run: seen, not reconciled
        await settle(queue)
        assert [key for key, _ in handler.passes] == [A]
        owned.add(B)
        assert queue.requeue([key for key in queue.known() if key == B]) == 1
        await settle(queue)
        assert [key for key, _ in handler.passes] == [A, B]
    finally:
        await queue.stop()


async def test_drain_waits_for_the_passes_in_flight_over_the_keys_it_names(
    world: tuple[WorkQueue, Recorder, Clock],
) -> None:
    queue, handler, _ = world
    handler.gate = asyncio.Event()
    queue.add(A)
    await asyncio.sleep(0)
    drained = asyncio.create_task(queue.drain(lambda key: key == A))
    await asyncio.sleep(0)
    assert not drained.done()
    await queue.drain(lambda key: key == B)  # nothing of B in flight: at once
    handler.gate.set()
    await asyncio.wait_for(drained, timeout=5)


def test_a_queue_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        WorkQueue(Recorder(), workers=0)


async def test_a_later_look_starts_from_the_body_kept_for_it_unless_an_event_brings_a_newer_one(
    world: tuple[WorkQueue, Recorder, Clock],
) -> None:
    queue, handler, clock = world
    queue.add(A)
    await settle(queue)
    queue.schedule(A, 30.0, body={"v": "echo"})
    clock.now += 30
    queue.advanced()
    await settle(queue)
    assert handler.passes[-1] == (A, {"v": "echo"})  # no read needed for the safety look
    queue.keep(A, {"v": "kept"})
    queue.schedule(A, 30.0)
    queue.add(A, {"v": "newer"})  # an event wins over what was kept
    await settle(queue)
    assert handler.passes[-1] == (A, {"v": "newer"})
