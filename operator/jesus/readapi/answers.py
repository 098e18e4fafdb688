"""Answers the read API has just given, kept for a moment: fifty dashboards asking for the newest page,
or for last month's spend per model, cost one query per `seconds`, not one each.

An answer is kept under the whole question that produced it: for a list or a cost sum, the filters,
the cursor's position, the page size and the exact set of namespaces the caller may read (what the
caller's SubjectAccessReviews allowed, worked out on every request before the cache is asked), so a
caller never gets an answer made for another set of namespaces; for one run, its namespace, name and
UID, asked only after the caller's review of that namespace allowed it. Archived runs do not change,
but new ones arrive: an answer is at most `seconds` old (an archived run is in the first page, the
newest of its name and the cost sums within that bound; docs/read-api.md).

Callers asking the same question at once share one query (`answer`): when the newest page expires,
the fifty clients that ask for it next wait for one query, not fifty.

The cache is bounded twice: `max_entries` answers and `max_bytes` of their estimated size (a run's
record can be large), the least recently used leaving first. The clock is injected.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

V = TypeVar("V")

DEFAULT_ANSWER_SECONDS = 2.0
DEFAULT_MAX_ANSWERS = 4096
DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class _Kept(Generic[V]):
    until: float
    size: int
    value: V


class AnswerCache:
    """Recent answers by question, each for at most `seconds` (0: none is kept)."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        seconds: float = DEFAULT_ANSWER_SECONDS,
        max_entries: int = DEFAULT_MAX_ANSWERS,
        max_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self._clock = clock
        self.seconds = seconds
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._kept: OrderedDict[Hashable, _Kept[object]] = OrderedDict()
        self._asked: dict[Hashable, asyncio.Task[object]] = {}
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, key: Hashable) -> object | None:
        """The answer kept under `key`, if it is younger than `seconds`."""
        kept = self._kept.get(key)
        if kept is None or kept.until <= self._clock():
            if kept is not None:
                self._drop(key)
            self.misses += 1
            return None
        self._kept.move_to_end(key)
        self.hits += 1
        return kept.value

    def put(self, key: Hashable, value: object, size: int) -> None:
        """Keep `value` (of about `size` bytes) under `key`; one larger than a tenth of the cache is not
        kept (it would push out many small ones)."""
        if self.seconds <= 0 or size > self.max_bytes // 10:
            return
        if key in self._kept:
            self._drop(key)
        self._kept[key] = _Kept(self._clock() + self.seconds, size, value)
        self.bytes += size
        while len(self._kept) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._kept)))  # the least recently used

    async def answer(self, key: Hashable, make: Callable[[], Awaitable[V]], size: Callable[[V], int]) -> V:
        """The answer kept under `key`, else the one `make` gives (kept, of `size(answer)` bytes); a
        question asked again while `make` runs waits for that answer. None (nothing found) and a
        failure are not kept: each waiter gets it, and the next asker asks again."""
        kept = self.get(key)
        if kept is not None:
            return cast(V, kept)  # what `make` gave for this key
        asking = self._asked.get(key)
        if asking is None:

            async def ask() -> object:
                try:
                    made = await make()
                    if made is not None:
                        self.put(key, made, size(made))
                    return made
                finally:
                    del self._asked[key]

            # A task of its own: a first asker who hangs up does not cancel the others' answer.
            asking = self._asked[key] = asyncio.ensure_future(ask())
        return cast(V, await asyncio.shield(asking))

    def _drop(self, key: Hashable) -> None:
        self.bytes -= self._kept.pop(key).size
