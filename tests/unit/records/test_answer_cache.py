"""`AnswerCache` alone: answers expire on the injected clock, the cache holds at most its entries and
its bytes, the least recently used leaving first, and askers of one question at once share one query."""

from __future__ import annotations

import asyncio

import pytest

from jesus.readapi.answers import AnswerCache


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_is_kept_for_its_seconds_and_no_longer() -> None:
    clock = Clock()
    cache = AnswerCache(clock, seconds=2.0)
    cache.put(("runs", "first page"), "page", 100)
    clock.now += 1.99
    assert cache.get(("runs", "first page")) == "page"
    clock.now += 0.01
    assert cache.get(("runs", "first page")) is None
    assert (len(cache), cache.bytes, cache.hits, cache.misses) == (0, 0, 1, 1)


def test_no_seconds_keeps_nothing() -> None:
    cache = AnswerCache(Clock(), seconds=0)
    cache.put("key", "answer", 10)
    assert cache.get("key") is None and len(cache) == 0


def test_the_least_recently_used_leaves_when_the_entries_are_full() -> None:
    cache = AnswerCache(Clock(), max_entries=2)
    cache.put("a", 1, 10)
    cache.put("b", 2, 10)
    assert cache.get("a") == 1  # a is now the more recent
    cache.put("c", 3, 10)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)


def test_the_bytes_are_bounded_and_a_huge_answer_is_not_kept() -> None:
    cache = AnswerCache(Clock(), max_bytes=1000)
    for key in range(10):
        cache.put(key, key, 100)
    assert cache.bytes == 1000 and len(cache) == 10
    cache.put("one more", "x", 100)
    assert cache.bytes == 1000 and cache.get(0) is None and cache.get("one more") == "x"
    cache.put("a huge record", "x" * 10**6, 101)  # more than a tenth of the cache
    assert cache.get("a huge record") is None and cache.bytes == 1000
    cache.put("one more", "y", 50)  # put again: counted once
    assert cache.bytes == 950 and cache.get("one more") == "y"


async def test_askers_of_one_question_at_once_share_one_answer() -> None:
    cache = AnswerCache(Clock())
    release = asyncio.Event()
    made = 0

    async def make() -> str:
        nonlocal made
        made += 1
        await release.wait()
        return "page"

    askers = [asyncio.ensure_future(cache.answer("first page", make, len)) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*askers) == ["page"] * 50
    assert made == 1
    assert await cache.answer("first page", make, len) == "page" and made == 1  # kept


async def test_a_failure_or_nothing_found_is_not_kept() -> None:
    cache = AnswerCache(Clock())
    failures = [RuntimeError("the archive is away")]

    async def make() -> str | None:
        if failures:
            raise failures.pop()
        return None

    with pytest.raises(RuntimeError, match="away"):
        await cache.answer("run", make, lambda _: 1)
    assert await cache.answer("run", make, lambda _: 1) is None
    assert len(cache) == 0


async def test_a_first_asker_who_hangs_up_does_not_cancel_the_others() -> None:
    cache = AnswerCache(Clock())
    release = asyncio.Event()

    async def make() -> str:
        await release.wait()
        return "sum"

    first = asyncio.ensure_future(cache.answer("costs", make, len))
    second = asyncio.ensure_future(cache.answer("costs", make, len))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == "sum"
    assert first.cancelled() and cache.get("costs") == "sum"
