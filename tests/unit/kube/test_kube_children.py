"""Every child the operator owns is created, adopted, updated or refused by one helper."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from jesus.api.objects import JsonObject, owner_reference
from jesus.kube import ChildAction, ForeignChildError, KubeError, ensure_child

OWNER = {"apiVersion": "jesus.dev/v1alpha1", "kind": "AgentRun", "metadata": {"name": "r", "uid": "uid-1"}}
OTHER = {"apiVersion": "jesus.dev/v1alpha1", "kind": "AgentRun", "metadata": {"name": "r", "uid": "uid-0"}}


class FakeStore:
    """create_or_get and merge-patch over a dict, recording what was asked."""

    def __init__(self, existing: JsonObject | None = None) -> None:
        self.objects: dict[str, JsonObject] = {}
        if existing is not None:
            self.objects[existing["metadata"]["name"]] = copy.deepcopy(existing)
        self.patches: list[JsonObject] = []

    async def create_or_get(self, obj: JsonObject) -> tuple[JsonObject, bool]:
        name = obj["metadata"]["name"]
        if name in self.objects:
            return copy.deepcopy(self.objects[name]), False
        self.objects[name] = copy.deepcopy(obj)
        return copy.deepcopy(obj), True

    async def patch(self, kind: str, namespace: str | None, name: str, patch: JsonObject) -> JsonObject:
        self.patches.append(patch)
        live = self.objects[name]
        for key, value in patch.items():
            live[key] = {**live.get(key, {}), **value} if isinstance(value, dict) else value
        return copy.deepcopy(live)


def job(owner: Mapping[str, Any] | None = OWNER, *, image: str = "runner:1") -> JsonObject:
    metadata: JsonObject = {"name": "r-a1", "namespace": "team", "labels": {"jesus.dev/run": "r"}}
    if owner is not None:
        metadata["ownerReferences"] = [owner_reference(owner)]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": {"image": image}}


def image_update(live: Mapping[str, Any], desired: Mapping[str, Any]) -> JsonObject | None:
    return None if live["spec"] == desired["spec"] else {"spec": desired["spec"]}


async def test_a_missing_child_is_created() -> None:
    store = FakeStore()
    child = await ensure_child(store, job())
    assert (child.action, child.ours, store.patches) == (ChildAction.CREATED, True, [])
    assert store.objects["r-a1"] == job()


async def test_our_child_is_left_alone_without_an_update_rule() -> None:
    store = FakeStore(job(image="runner:0"))
    child = await ensure_child(store, job())
    assert (child.action, store.patches) == (ChildAction.UNCHANGED, [])
    assert child.require_ours()["spec"]["image"] == "runner:0"


async def test_our_child_is_updated_only_when_it_differs() -> None:
    store = FakeStore(job(image="runner:0"))
    assert (await ensure_child(store, job(), update=image_update)).action is ChildAction.UPDATED
    assert store.objects["r-a1"]["spec"] == {"image": "runner:1"}
    assert (await ensure_child(store, job(), update=image_update)).action is ChildAction.UNCHANGED
    assert len(store.patches) == 1


async def test_an_orphan_is_adopted_with_our_labels_and_owner() -> None:
    store = FakeStore(job(owner=None))
    child = await ensure_child(store, job())
    assert child.action is ChildAction.ADOPTED
    assert store.patches == [
        {"metadata": {"labels": {"jesus.dev/run": "r"}, "ownerReferences": [owner_reference(OWNER)]}}
    ]
    assert child.live["metadata"]["ownerReferences"] == [owner_reference(OWNER)]


async def test_an_adopted_orphan_is_also_updated() -> None:
    store = FakeStore(job(owner=None, image="runner:0"))
    child = await ensure_child(store, job(), update=image_update)
    assert child.action is ChildAction.ADOPTED
    assert store.objects["r-a1"]["spec"] == {"image": "runner:1"}
    assert store.objects["r-a1"]["metadata"]["ownerReferences"] == [owner_reference(OWNER)]


async def test_another_owners_child_is_never_touched_and_refused_on_request() -> None:
    store = FakeStore(job(owner=OTHER, image="runner:0"))
    child = await ensure_child(store, job(), update=image_update)
    assert (child.action, child.ours, store.patches) == (ChildAction.FOREIGN, False, [])
    assert store.objects["r-a1"] == job(owner=OTHER, image="runner:0")
    with pytest.raises(ForeignChildError, match="Job r-a1 exists and is controlled by AgentRun r") as caught:
        child.require_ours()
    # A KubeError, so the handlers turn it into a Kopf retry; not a ConflictError, re-read at once.
    assert isinstance(caught.value, KubeError)
    assert caught.value.status == 409


async def test_a_child_without_a_controller_reference_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="Job r-a1 has no controller ownerReference"):
        await ensure_child(FakeStore(), job(owner=None))
