"""A work queue for level-based reconciles, as client-go's: a key is reconciled by one worker at a time,
the events that arrive meanwhile fold into one more pass, and a key can be put back after a delay
(a resync, a retry's backoff) without a task of its own.

It replaces Kopf's change handlers and per-object timers for AgentRuns (issue 20): those need Kopf's
finalizer and its last-handled annotation on every run, two writes per run that a level-based
reconcile has no use for, and a timer task per run that a 10,000-run hold pays for in memory. Kopf
still watches and hands every event to `add`; the queue decides when the reconcile runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from jesus.kube import JsonObject

logger = logging.getLogger(__name__)

Key = tuple[str, str]
"""namespace, name"""

BACKOFFS = (1.0, 2.0, 5.0, 10.0, 30.0)


class Retry(Exception):  # noqa: N818 - an instruction, not an error
    """Raised by a handler: reconcile the key again after `delay` seconds (or the queue's backoff)."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class GiveUp(Exception):  # noqa: N818 - an instruction, not an error
    """Raised by a handler: do not retry this key until its next event."""


Handler = Callable[[Key, JsonObject | None], Awaitable[float | None]]
"""Reconcile one key from the body its event carried (None: read it); the seconds until it should be
reconciled again when nothing else happens, or None."""


@dataclass
class _Failures:
    count: int = 0


class WorkQueue:
    """Keys to reconcile now or later, served by `workers` tasks; `owns` filters keys this process may
    reconcile (a shard of the runs), and is asked again just before each pass."""

    def __init__(
        self,
        handler: Handler,
        *,
        workers: int,
        owns: Callable[[Key], bool] = lambda _: True,
        clock: Callable[[], float] = time.monotonic,
        backoffs: tuple[float, ...] = BACKOFFS,
    ) -> None:
        if workers < 1:
            raise ValueError("a work queue needs at least one worker")
        self._handler = handler
        self._workers = workers
        self._owns = owns
        self._clock = clock
        self._backoffs = backoffs
        self._ready: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        self._dirty: set[Key] = set()
        self._bodies: dict[Key, JsonObject] = {}
        self._due: dict[Key, float] = {}
        self._heap: list[tuple[float, int, Key]] = []
        self._order = itertools.count()
        self._failures: dict[Key, _Failures] = {}
        self._known: set[Key] = set()
        self._timer_changed = asyncio.Event()
        self._passed = asyncio.Condition()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []

    # -- what the event handlers call -----------------------------------------------------------

    def add(self, key: Key, body: JsonObject | None = None) -> None:
        """Reconcile `key` as soon as a worker is free; `body` is its newest state, when known."""
        self._known.add(key)
        if body is not None:
            self._bodies[key] = body
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._idle.clear()
            self._ready.put_nowait(key)

    def track(self, key: Key) -> None:
        """Remember that `key` exists (another shard's run), so `requeue` can find it later."""
        self._known.add(key)

    def schedule(self, key: Key, delay: float | None, body: JsonObject | None = None) -> None:
        """Reconcile `key` after `delay` seconds, replacing what was scheduled; None: nothing scheduled.
        `body`: its state now, for that pass to start from (a newer event's body replaces it)."""
        if delay is None:
            self._due.pop(key, None)
            return
        if body is not None and key not in self._bodies:
            self._bodies[key] = body
        due = self._clock() + max(0.0, delay)
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._order), key))
        self._timer_changed.set()

    def forget(self, key: Key) -> None:
        """`key` is gone: nothing scheduled, no body or failures kept (a pass in flight finishes)."""
        self._known.discard(key)
        self._due.pop(key, None)
        self._bodies.pop(key, None)
        self._failures.pop(key, None)
        self._dirty.discard(key)

    def requeue(self, keys: Iterable[Key] | None = None) -> int:
        """Reconcile `keys` (default: every key known) now, e.g. the runs of a shard just taken over;
        how many were queued."""
        chosen = list(self._known if keys is None else keys)
        for key in chosen:
            self.add(key)
        return len(chosen)

    def known(self) -> frozenset[Key]:
        """Every key seen and not forgotten."""
        return frozenset(self._known)

    def scheduled(self, key: Key) -> float | None:
        """When `key` is due by the queue's clock, or None."""
        return self._due.get(key)

    def advanced(self) -> None:
        """The queue's clock moved on by more than the timer waited for (an injected clock): look at
        what is due now."""
        self._timer_changed.set()

    async def drain(self, which: Callable[[Key], bool]) -> None:
        """Wait until no pass over a key `which` selects is in flight."""
        async with self._passed:
            await self._passed.wait_for(lambda: not any(which(key) for key in self._active))

    async def idle(self) -> None:
        """Wait until nothing is queued or in flight (for tests and shutdown)."""
        await self._idle.wait()

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers and the timer."""
        if self._tasks:
            return
        self._tasks = [asyncio.create_task(self._work(), name=f"workqueue-{i}") for i in range(self._workers)]
        self._tasks.append(asyncio.create_task(self._timer(), name="workqueue-timer"))

    async def stop(self) -> None:
        """Cancel the workers (passes in flight are cut off: the next start reconciles again)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _timer(self) -> None:
        while True:
            self._timer_changed.clear()
            now = self._clock()
            while self._heap and self._heap[0][0] <= now:
                due, _, key = heapq.heappop(self._heap)
                if self._due.get(key) == due:
                    del self._due[key]
                    self.add(key)
            wait = self._heap[0][0] - now if self._heap else None
            # asyncio.wait, not wait_for: a cancelled wait_for can hang on its inner task in 3.11.
            waiter = asyncio.ensure_future(self._timer_changed.wait())
            try:
                await asyncio.wait({waiter}, timeout=wait)
            finally:
                waiter.cancel()

    async def _work(self) -> None:
        while True:
            key = await self._ready.get()
            self._queued.discard(key)
            self._active.add(key)
            body = self._bodies.pop(key, None)
            try:
                if self._owns(key):
                    await self._pass(key, body)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
                elif not self._queued and not self._active:
                    self._idle.set()
                async with self._passed:
                    self._passed.notify_all()

    async def _pass(self, key: Key, body: JsonObject | None) -> None:
        try:
            delay = await self._handler(key, body)
        except Retry as exc:
            failures = self._failures.setdefault(key, _Failures())
            failures.count += 1
            backoff = exc.delay if exc.delay is not None else self._backoff(failures.count)
            logger.warning("Reconcile failed key=%s/%s retryIn=%.1fs error=%s", *key, backoff, exc)
            self.schedule(key, backoff)
            return
        except GiveUp as exc:
            self._failures.pop(key, None)
            logger.error("Reconcile gave up key=%s/%s error=%s", *key, exc)
            return
        except Exception:
            failures = self._failures.setdefault(key, _Failures())
            failures.count += 1
            backoff = self._backoff(failures.count)
            logger.exception("Reconcile raised key=%s/%s retryIn=%.1fs", *key, backoff)
            self.schedule(key, backoff)
            return
        self._failures.pop(key, None)
        if key in self._known:
            self.schedule(key, delay)

    def keep(self, key: Key, body: JsonObject) -> None:
        """`body` is `key`'s state now: its next pass starts from it, unless a newer event comes."""
        if key in self._known and key not in self._bodies:
            self._bodies[key] = body

    def _backoff(self, count: int) -> float:
        return self._backoffs[min(count, len(self._backoffs)) - 1]
