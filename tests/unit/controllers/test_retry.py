"""A reconcile whose write conflicts is decided again at once, and handed to Kopf only if it keeps failing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import kopf
import pytest

from jesus.controllers.retry import CONFLICT_TRIES, until_written
from jesus.kube import ConflictError, NotFoundError


def conflicting(times: int) -> tuple[list[int], Callable[[], Awaitable[None]]]:
    calls: list[int] = []

    async def attempt() -> None:
        calls.append(len(calls))
        if len(calls) <= times:
            raise ConflictError(409, "Conflict", "the object has been modified")

    return calls, attempt


def test_a_conflict_is_decided_again() -> None:
    calls, attempt = conflicting(CONFLICT_TRIES - 1)
    asyncio.run(until_written(attempt, "ModelAdapter team/a"))
    assert len(calls) == CONFLICT_TRIES


def test_endless_conflicts_become_a_kopf_retry_naming_the_object() -> None:
    calls, attempt = conflicting(100)
    with pytest.raises(kopf.TemporaryError, match="ModelAdapter team/a kept changing"):
        asyncio.run(until_written(attempt, "ModelAdapter team/a"))
    assert len(calls) == CONFLICT_TRIES


def test_other_errors_are_not_retried_here() -> None:
    calls: list[int] = []

    async def attempt() -> None:
        calls.append(1)
        raise NotFoundError(404, "NotFound", "gone")

    with pytest.raises(NotFoundError):
        asyncio.run(until_written(attempt, "RoutePolicy team/r"))
    assert calls == [1]
