"""The router's cluster route source over an in-memory cluster: what it builds from the watched
ModelAdapters, RoutePolicies and Secrets, what it refuses and why, and how the reflector under it
lists again, resumes and survives a bad object. The same source on the real API server is proven in
tests/cluster/test_router_cluster.py."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from tests.builders.adapters import scripted_adapter, vllm_adapter
from tests.builders.manifest import manifest
from tests.builders.routes import route_policy

from jesus.api.objects import JsonObject
from jesus.kube.errors import KubeError, WatchExpiredError
from jesus.kube.reflector import Reflector
from jesus.router.cluster_source import ClusterRouteSource
from jesus.router.config import EnvironmentCredentials
from jesus.router.sources import RETIRE_GRACE_SECONDS

NS = "team"


class FakeCluster:
    """Objects by kind, a resourceVersion counter, and a queue of watch events per kind. `fail` makes
    the next watch of a kind raise (a 410 or a broken connection)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[tuple[str, str], JsonObject]] = defaultdict(dict)
        self.version = 0
        self.queues: dict[tuple[str, str | None], asyncio.Queue[tuple[str, JsonObject] | Exception]] = (
            defaultdict(asyncio.Queue)
        )
        self.lists: dict[str, int] = defaultdict(int)
        self.watched_from: dict[str, list[str]] = defaultdict(list)
        self.gets: list[tuple[str, str, str]] = []

    def _stamp(self, obj: JsonObject) -> JsonObject:
        self.version += 1
        metadata = {"namespace": NS, **obj.get("metadata", {}), "resourceVersion": str(self.version)}
        return {**obj, "metadata": metadata}

    def put(self, obj: JsonObject, *, event: bool = True) -> None:
        stamped = self._stamp(obj)
        key = (stamped["metadata"]["namespace"], stamped["metadata"]["name"])
        type_ = "MODIFIED" if key in self.objects[obj["kind"]] else "ADDED"
        self.objects[obj["kind"]][key] = stamped
        if event:
            self._send(obj["kind"], key[0], (type_, stamped))

    def _send(self, kind: str, namespace: str, item: tuple[str, JsonObject] | Exception) -> None:
        for watched in (namespace, None):
            self.queues[(kind, watched)].put_nowait(item)

    def delete(self, kind: str, name: str, namespace: str = NS) -> None:
        obj = self.objects[kind].pop((namespace, name))
        self._send(kind, namespace, ("DELETED", self._stamp(obj)))

    def fail(self, kind: str, error: Exception, namespace: str = NS) -> None:
        self.queues[(kind, namespace)].put_nowait(error)

    async def list_at(
        self, kind: str, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> tuple[list[JsonObject], str]:
        self.lists[kind] += 1
        items = [
            obj
            for (where, _), obj in self.objects[kind].items()
            if namespace in (None, where) and _labelled(obj, labels)
        ]
        return items, str(self.version)

    async def watch(
        self,
        kind: str,
        namespace: str | None,
        resource_version: str,
        *,
        timeout_seconds: int = 300,
        labels: Mapping[str, str] | None = None,
    ) -> AsyncIterator[tuple[str, JsonObject]]:
        self.watched_from[kind].append(resource_version)
        while True:
            item = await self.queues[(kind, namespace)].get()
            if isinstance(item, Exception):
                raise item
            if _labelled(item[1], labels):
                yield item

    async def get(self, kind: str, namespace: str | None, name: str) -> JsonObject | None:
        self.gets.append((kind, namespace or "", name))
        return self.objects[kind].get((namespace or "", name))


def _labelled(obj: JsonObject, labels: Mapping[str, str] | None) -> bool:
    """Whether `obj` has `labels` (as the API server's label selector chooses)."""
    return all((obj["metadata"].get("labels") or {}).get(k) == v for k, v in (labels or {}).items())


def secret(name: str, **data: str) -> JsonObject:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


def openai_compatible(
    name: str, *, secret_name: str = "key", endpoint: str = "http://127.0.0.1:9/v1", **kw: Any
) -> Any:
    return manifest(
        "ModelAdapter",
        name,
        {
            "provider": "openai-compatible",
            "model": "m-1",
            "endpoint": endpoint,
            "credentialsSecretRef": {"name": secret_name, "key": "apiKey"},
            "pricing": {"inputPerMillionTokens": "1.00", "outputPerMillionTokens": "2.00"},
            "dataClassifications": ["public", "internal"],
        },
        **kw,
    )


async def settle() -> None:
    """Let the watches take what is queued."""
    for _ in range(20):
        await asyncio.sleep(0)


async def started(
    cluster: FakeCluster, namespaces: tuple[str, ...] = (NS,), **options: Any
) -> ClusterRouteSource:
    source = ClusterRouteSource(namespaces=namespaces, live=True, **options)
    await source.start(cluster, timeout_seconds=5)
    return source


async def test_listed_adapters_and_policies_resolve_a_plan_named_by_namespace() -> None:
    cluster = FakeCluster()
    cluster.put(scripted_adapter("a"))
    cluster.put(scripted_adapter("b", classifications=("public",)))
    cluster.put(route_policy("route", ("a", "b")))
    source = await started(cluster)
    try:
        assert source.synced
        assert set(source.adapters) == {f"{NS}/a", f"{NS}/b"}
        plan = source.resolve_plan(NS, "route", "internal")
        assert plan.chain == (f"{NS}/a",)  # b may not receive internal data
        with pytest.raises(ValueError, match=f"RoutePolicy {NS}/missing is not known"):
            source.resolve_plan(NS, "missing", "internal")
        with pytest.raises(ValueError, match="RoutePolicy other/route is not known"):
            source.resolve_plan("other", "route", "internal")  # namespaces stay apart
    finally:
        await source.stop()


async def test_an_adapter_without_its_secret_is_refused_by_name_until_the_secret_arrives() -> None:
    cluster = FakeCluster()
    cluster.put(openai_compatible("gpt"))
    cluster.put(route_policy("route", ("gpt",)))
    source = await started(cluster, fallback=EnvironmentCredentials({}))
    try:
        assert f"{NS}/gpt" not in source.adapters
        with pytest.raises(ValueError, match="ModelAdapter gpt: no credential for Secret key key apiKey"):
            source.resolve_plan(NS, "route", "internal")
        cluster.put(secret("key", apiKey="sk-from-the-secret"))
        await settle()
        assert source.resolve_plan(NS, "route", "internal").chain == (f"{NS}/gpt",)
        assert source.adapters[f"{NS}/gpt"].adapter.credentials == ("sk-from-the-secret",)  # type: ignore[attr-defined]
    finally:
        await source.stop()


async def test_only_secrets_an_adapter_names_are_kept_and_a_deleted_one_unbuilds_its_adapter() -> None:
    cluster = FakeCluster()
    cluster.put(secret("key", apiKey="sk-one"))
    cluster.put(secret("unrelated", password="hunter2-not-for-the-router"))
    cluster.put(openai_compatible("gpt"))
    source = await started(cluster)
    try:
        kept = source._secrets.values
        assert (NS, "key") in kept
        assert (NS, "unrelated") not in kept
        cluster.put(secret("unrelated", password="changed"))
        await settle()
        assert (NS, "unrelated") not in source._secrets.values
        cluster.delete("Secret", "key")
        await settle()
        assert f"{NS}/gpt" not in source.adapters
        assert "no credential" in source.problems[f"{NS}/gpt"]
    finally:
        await source.stop()


async def test_an_adapter_named_before_its_secret_was_listed_reads_it_once() -> None:
    cluster = FakeCluster()
    source = await started(cluster)
    try:
        cluster.put(secret("key", apiKey="sk-late"), event=False)  # listed before: no event to take
        cluster.put(openai_compatible("gpt"))
        await settle()
        assert f"{NS}/gpt" in source.adapters
        assert cluster.gets == [("Secret", NS, "key")]
    finally:
        await source.stop()


async def test_a_status_only_change_keeps_the_built_adapter_and_an_endpoint_change_rebuilds_it() -> None:
    cluster = FakeCluster()
    served = vllm_adapter("llama")
    cluster.put(served)
    source = await started(cluster)
    try:
        assert f"{NS}/llama" not in source.adapters  # its Service is not ready: no endpoint yet
        assert "status has no endpoint yet" in source.problems[f"{NS}/llama"]
        cluster.put({**served, "status": {"endpoint": "http://llama.team.svc:8000/v1"}})
        await settle()
        first = source.adapters[f"{NS}/llama"]
        cluster.put({**served, "status": {"endpoint": "http://llama.team.svc:8000/v1", "selfHosted": True}})
        await settle()
        assert source.adapters[f"{NS}/llama"] is first  # nothing it is built from changed
        cluster.put({**served, "status": {"endpoint": "http://llama-2.team.svc:8000/v1"}})
        await settle()
        assert source.adapters[f"{NS}/llama"] is not first
    finally:
        await source.stop()


async def test_an_invalid_adapter_or_policy_is_named_with_its_field_and_the_rest_still_serve() -> None:
    cluster = FakeCluster()
    cluster.put(scripted_adapter("good"))
    source = await started(cluster)
    try:
        broken = scripted_adapter("broken")
        broken["spec"]["pricing"]["inputPerMillionTokens"] = "a lot"
        cluster.put(broken)
        bad_route = route_policy("bad-route", ("good",))
        bad_route["spec"]["chain"] = "good"
        cluster.put(bad_route)
        cluster.put(route_policy("route", ("broken", "good")))
        await settle()
        assert "pricing" in source.problems[f"{NS}/broken"]
        assert f"ModelAdapter {NS}/broken is invalid" in source.problems[f"{NS}/broken"]
        with pytest.raises(ValueError, match=f"RoutePolicy {NS}/bad-route is invalid: spec.chain"):
            source.resolve_plan(NS, "bad-route", "internal")
        assert source.resolve_plan(NS, "route", "internal").chain == (f"{NS}/good",)
    finally:
        await source.stop()


async def test_a_deleted_adapter_leaves_the_map() -> None:
    cluster = FakeCluster()
    cluster.put(scripted_adapter("a"))
    source = await started(cluster)
    try:
        cluster.delete("ModelAdapter", "a")
        await settle()
        assert source.adapters == {}
    finally:
        await source.stop()


async def test_an_expired_watch_lists_again_and_a_relist_drops_what_went_meanwhile() -> None:
    cluster = FakeCluster()
    cluster.put(scripted_adapter("a"))
    cluster.put(scripted_adapter("b"))
    source = await started(cluster)
    try:
        del cluster.objects["ModelAdapter"][(NS, "b")]  # deleted while the watch could not tell
        cluster.fail("ModelAdapter", WatchExpiredError(410, "Expired", "too old"))
        await settle()
        assert cluster.lists["ModelAdapter"] == 2
        assert set(source.adapters) == {f"{NS}/a"}
    finally:
        await source.stop()


async def test_a_broken_watch_resumes_from_the_last_version_after_a_pause() -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    cluster = FakeCluster()
    changes: list[str] = []

    async def replace(items: list[JsonObject]) -> None:
        return None

    async def change(type_: str, obj: JsonObject) -> None:
        changes.append(obj["metadata"]["name"])

    reflector = Reflector(cluster, "RoutePolicy", NS, replace, change, sleep=sleep)
    task = asyncio.create_task(reflector.run())
    try:
        await settle()
        cluster.put(route_policy("one"))
        await settle()
        cluster.fail("RoutePolicy", KubeError(0, "WatchBroken", "connection reset"))
        cluster.fail("RoutePolicy", KubeError(0, "WatchBroken", "connection reset"))
        await settle()
        cluster.put(route_policy("two"))
        await settle()
        assert changes == ["one", "two"]
        assert pauses == [0.5, 1.0]  # growing
        assert cluster.lists["RoutePolicy"] == 1  # resumed, not listed again
        assert cluster.watched_from["RoutePolicy"][-1] == cluster.watched_from["RoutePolicy"][-2] != "0"
    finally:
        task.cancel()


async def test_a_change_the_view_cannot_take_is_logged_and_the_watch_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = FakeCluster()
    seen: list[str] = []

    async def replace(items: list[JsonObject]) -> None:
        return None

    async def change(type_: str, obj: JsonObject) -> None:
        if obj["metadata"]["name"] == "poison":
            raise RuntimeError("cannot take this one")
        seen.append(obj["metadata"]["name"])

    reflector = Reflector(cluster, "RoutePolicy", NS, replace, change)
    task = asyncio.create_task(reflector.run())
    try:
        with caplog.at_level(logging.ERROR):
            await settle()
            cluster.put(route_policy("poison"))
            cluster.put(route_policy("after"))
            await settle()
        assert seen == ["after"]
        assert f"RoutePolicy {NS}/poison" in caplog.text
    finally:
        task.cancel()


async def test_a_secret_value_that_is_not_base64_is_ignored_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = FakeCluster()
    careless = secret("key")
    careless["data"] = {"apiKey": "not base64 at all!"}
    cluster.put(careless)
    cluster.put(openai_compatible("gpt"))
    with caplog.at_level(logging.WARNING):
        source = await started(cluster, fallback=EnvironmentCredentials({}))
    try:
        assert f"Secret {NS}/key key apiKey is not base64" in caplog.text
        assert "not base64 at all" not in caplog.text
        assert f"{NS}/gpt" not in source.adapters
    finally:
        await source.stop()


async def test_listing_one_namespace_again_leaves_the_others_alone() -> None:
    cluster = FakeCluster()
    for namespace in (NS, "other"):
        cluster.put(scripted_adapter("a", namespace=namespace))
        cluster.put(route_policy("route", ("a",), namespace=namespace))
        cluster.put(
            secret("key", apiKey=f"sk-{namespace}") | {"metadata": {"name": "key", "namespace": namespace}}
        )
        cluster.put(openai_compatible("gpt", namespace=namespace))
    source = await started(cluster, namespaces=(NS, "other"))
    try:
        assert set(source.adapters) == {f"{NS}/a", f"{NS}/gpt", "other/a", "other/gpt"}
        for kind in ("ModelAdapter", "RoutePolicy", "Secret"):
            cluster.fail(kind, WatchExpiredError(410, "Expired", "too old"), namespace=NS)
        await settle()
        assert cluster.lists["Secret"] == 3
        assert set(source.adapters) == {f"{NS}/a", f"{NS}/gpt", "other/a", "other/gpt"}
        assert source.resolve_plan("other", "route", "internal").chain == ("other/a",)
        assert source._secrets.values[("other", "key")] == {"apiKey": "sk-other"}
    finally:
        await source.stop()


async def test_a_cluster_wide_source_keys_adapters_by_namespace() -> None:
    cluster = FakeCluster()
    cluster.put(scripted_adapter("a", text="from team"))
    cluster.put(scripted_adapter("a", text="from other", namespace="other"))
    source = await started(cluster, namespaces=())
    try:
        assert set(source.adapters) == {f"{NS}/a", "other/a"}
        assert source.adapters["other/a"].name == "other/a"
    finally:
        await source.stop()


async def test_a_kind_it_may_not_list_is_named_with_the_refusal_when_start_gives_up() -> None:
    class NoSecrets(FakeCluster):
        async def list_at(
            self, kind: str, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
        ) -> tuple[list[JsonObject], str]:
            if kind == "Secret":
                raise KubeError(403, "Forbidden", 'secrets is forbidden: cannot list resource "secrets"')
            return await super().list_at(kind, namespace, labels=labels)

    source = ClusterRouteSource(namespaces=(NS,))
    with pytest.raises(TimeoutError):
        await source.start(NoSecrets(), timeout_seconds=0.2)
    try:
        [missing] = source.unsynced()
        assert missing.startswith(f"Secret in {NS} (403 Forbidden: secrets is forbidden")
        assert not source.synced
    finally:
        await source.stop()


async def test_an_adapter_and_a_policy_of_the_same_name_keep_their_own_reasons() -> None:
    cluster = FakeCluster()
    source = await started(cluster, fallback=EnvironmentCredentials({}))
    try:
        cluster.put(openai_compatible("same", secret_name="missing"))
        cluster.put(route_policy("same", ("same",)))  # seen after the adapter it is named like
        await settle()
        with pytest.raises(ValueError, match="ModelAdapter same: no credential for Secret missing"):
            source.resolve_plan(NS, "same", "internal")
    finally:
        await source.stop()


async def test_a_replaced_or_deleted_adapter_is_closed_after_its_grace_and_the_rest_on_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[str] = []

    async def close(routed: Any) -> None:
        closed.append(routed.name)

    graces: list[float] = []
    gate = asyncio.Event()

    async def sleep(seconds: float) -> None:
        graces.append(seconds)
        await gate.wait()

    monkeypatch.setattr("jesus.router.cluster_source.close_adapter", close)
    cluster = FakeCluster()
    cluster.put(scripted_adapter("kept"))
    cluster.put(scripted_adapter("edited"))
    cluster.put(scripted_adapter("deleted"))
    source = await started(cluster, sleep=sleep)
    try:
        cluster.put(scripted_adapter("edited", text="a new script"))
        cluster.delete("ModelAdapter", "deleted")
        await settle()
        assert closed == []  # calls that still hold them may go on
        assert graces == [RETIRE_GRACE_SECONDS] * 2
        gate.set()
        await settle()
        assert sorted(closed) == [f"{NS}/deleted", f"{NS}/edited"]
    finally:
        await source.stop()
    assert sorted(closed) == [f"{NS}/deleted", f"{NS}/edited", f"{NS}/edited", f"{NS}/kept"]
