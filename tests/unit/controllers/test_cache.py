"""The operator's watch-fed cache: the newest state of each object, parsed once, invalid ones set aside."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import pydantic
import pytest
from tests.builders.budget import budget
from tests.builders.manifest import Obj, set_field
from tests.builders.routes import route_policy

from jesus.controllers.cache import ClusterCache
from jesus.kube import KubeClient, KubeError


def versioned(obj: Obj, version: str, namespace: str = "team") -> Obj:
    obj["metadata"].update(resourceVersion=version, namespace=namespace)
    return obj


def test_keeps_the_latest_state_and_forgets_deleted_objects() -> None:
    cache = ClusterCache()
    cache.budgets.put(versioned(budget("b", limit="1.00"), "1"))
    first = cache.budgets.get("team", "b")
    assert first is not None and first.spec.limit_micros == 1_000_000
    cache.budgets.put(versioned(budget("b", limit="1.00"), "1"))
    assert cache.budgets.get("team", "b") is first  # same version: not parsed again
    cache.budgets.put(versioned(budget("b", limit="2.00"), "2"))
    second = cache.budgets.get("team", "b")
    assert second is not None and second.spec.limit_micros == 2_000_000
    assert cache.budgets.versions() == {("team", "b"): "2"}
    assert cache.budgets.version("team", "b") == "2"
    cache.budgets.remove("team", "b")
    assert (cache.budgets.get("team", "b"), cache.budgets.raw("team", "b"), cache.budgets.versions()) == (
        None,
        None,
        {},
    )


def test_lists_by_namespace_and_finds_policies_naming_an_adapter() -> None:
    cache = ClusterCache()
    cache.route_policies.put(versioned(route_policy("a", ("fast", "slow")), "1"))
    cache.route_policies.put(versioned(route_policy("b", ("slow",)), "2"))
    cache.route_policies.put(versioned(route_policy("c", ("fast",)), "3", namespace="other"))
    assert sorted(cache.route_policies.by_name("team")) == ["a", "b"]
    assert [p.metadata.name for p in cache.route_policies.valid("other")] == ["c"]
    assert len(cache.route_policies.valid()) == 3
    assert cache.route_policies.names_referring("team", "fast") == ["a"]
    assert sorted(cache.route_policies.names_referring("team", "slow")) == ["a", "b"]
    assert cache.route_policies.versions("other") == {("other", "c"): "3"}


def test_an_invalid_object_is_left_out_of_lists_logged_once_and_raises_when_asked_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = ClusterCache()
    cache.budgets.put(versioned(budget("good"), "1"))
    cache.budgets.put(versioned(set_field(budget("bad"), "spec.limit", "lots"), "2"))
    with caplog.at_level(logging.WARNING, logger="jesus.controllers.cache"):
        assert [b.metadata.name for b in cache.budgets.valid()] == ["good"]
        assert [b.metadata.name for b in cache.budgets.valid()] == ["good"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "name=bad" in warnings[0] and "Budget" in warnings[0]
    with pytest.raises(pydantic.ValidationError):
        cache.budgets.get("team", "bad")
    assert cache.budgets.raw("team", "bad") is not None


def test_a_full_listing_replaces_what_was_known() -> None:
    cache = ClusterCache()
    cache.budgets.put(versioned(budget("gone"), "1"))
    cache.budgets.replace_all([versioned(budget("kept"), "5")])
    assert cache.budgets.versions() == {("team", "kept"): "5"}


class FlakyKube:
    """Answers LISTs the way a just-started API server does: 429 a few times, then the objects."""

    def __init__(self, failures: int, objects: dict[str, list[Obj]]) -> None:
        self.failures, self.objects, self.calls = failures, objects, 0

    async def list(self, kind: str, namespace: str | None = None) -> list[Obj]:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise KubeError(429, "TooManyRequests", "storage is (re)initializing")
        return [o for o in self.objects.get(kind, []) if namespace in (None, o["metadata"]["namespace"])]


def test_priming_waits_out_a_busy_api_server(caplog: pytest.LogCaptureFixture) -> None:
    objects = {"Budget": [versioned(budget("b"), "7")], "RoutePolicy": [versioned(route_policy("r"), "8")]}
    kube = FlakyKube(2, objects)
    cache = ClusterCache()
    with caplog.at_level(logging.WARNING, logger="jesus.controllers.cache"):
        asyncio.run(cache.prime(cast(KubeClient, kube), retry_seconds=0.01))
    assert cache.budgets.versions() == {("team", "b"): "7"}
    assert cache.route_policies.versions() == {("team", "r"): "8"}
    assert cache.adapters.versions() == {}
    assert kube.calls == 6  # two refused, then Budget, RoutePolicy, ModelAdapter, Lesson
    assert sum("Waiting to list Budget" in r.getMessage() for r in caplog.records) == 2


def test_priming_lists_only_the_operators_namespaces() -> None:
    budgets = [versioned(budget("in"), "1"), versioned(budget("out"), "2", namespace="other")]
    kube = FlakyKube(0, {"Budget": budgets})
    cache = ClusterCache()
    asyncio.run(cache.prime(cast(KubeClient, kube), ["team"]))
    assert cache.budgets.versions() == {("team", "in"): "1"}
