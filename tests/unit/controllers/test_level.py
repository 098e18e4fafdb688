"""The shared level-triggered wiring: one reconcile behind create, update, resume and the resync timer."""

from __future__ import annotations

import asyncio

import kopf
import pytest

from jesus.controllers.level import register_level_handlers, retrying_on_api_errors
from jesus.kube import KubeError


def test_a_failed_api_request_becomes_a_short_kopf_retry() -> None:
    async def reconcile(namespace: str, name: str) -> None:
        raise KubeError(503, "ServiceUnavailable", "etcd is slow")

    with pytest.raises(kopf.TemporaryError, match="API request failed: 503 ServiceUnavailable") as caught:
        asyncio.run(retrying_on_api_errors(reconcile)("team", "a"))
    assert caught.value.delay == 1


def test_other_errors_and_successes_pass_through() -> None:
    seen: list[tuple[str, str]] = []

    async def reconcile(namespace: str, name: str) -> None:
        seen.append((namespace, name))
        if name == "bad":
            raise ValueError("not an API error")

    guarded = retrying_on_api_errors(reconcile)
    asyncio.run(guarded("team", "good"))
    with pytest.raises(ValueError, match="not an API error"):
        asyncio.run(guarded("team", "bad"))
    assert seen == [("team", "good"), ("team", "bad")]


def test_the_handlers_keep_their_ids_and_the_timer_its_interval() -> None:
    registry = kopf.OperatorRegistry()

    async def reconcile(namespace: str, name: str) -> None:
        return None

    register_level_handlers(registry, "budgets", "budget", reconcile, interval=42.0)
    changing = {h.id for h in registry._changing.get_all_handlers()}
    spawning = {h.id: h for h in registry._spawning.get_all_handlers()}
    assert changing == {"budget-resume", "budget-create", "budget-update"}
    assert set(spawning) == {"budget-resync"}
    assert spawning["budget-resync"].interval == 42.0
