"""The ModelAdapter reconcile against an in-memory API server: credentials, the vLLM Deployment and
Service of a serving block (created, adopted, updated, left alone when another owner has the name,
retired when the block goes), the status and its events. The cluster tier proves the wiring."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import kopf
import pytest
from tests.builders.adapters import openai_adapter, scripted_adapter, vllm_adapter
from tests.builders.cluster import FakeKube, handler, operator_context
from tests.builders.manifest import set_field

from jesus.controllers.context import OperatorSettings
from jesus.controllers.modeladapter import reconcile_adapter, register
from jesus.kube import JsonObject, KubeError, NotFoundError
from jesus.logic.queueing import (
    ADMISSION_GATE,
    LABEL_JOB_UID,
    LABEL_PRIORITY_CLASS,
    LABEL_QUEUE_NAME,
    QueueingError,
    QueueSettings,
)
from jesus.policy.decision import Decision, PolicyInput

NS = "team"
NOW = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)


class Engine:
    name = "unused"

    async def decide(self, policy_input: PolicyInput) -> Decision:
        raise AssertionError("the ModelAdapter reconcile never asks the policy")


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch, as the API server applies it."""
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


class PatchingKube(FakeKube):
    """FakeKube with merge patches (and a generation bump on spec changes) and optional event failures."""

    def __init__(self) -> None:
        super().__init__()
        self.patches: list[tuple[str, str, JsonObject]] = []
        self.fail_events = False

    async def patch(self, kind: str, namespace: str | None, name: str, patch: JsonObject) -> JsonObject:
        current = self.find(kind, namespace or "", name)
        if current is None:
            raise NotFoundError(404, "NotFound", f"{kind} {name} does not exist")
        self.patches.append((kind, name, patch))
        return self.put(merge(current, patch))

    async def event(self, involved: JsonObject, *, type_: str, reason: str, message: str) -> None:
        if self.fail_events:
            raise KubeError(500, "InternalError", "events are down")
        await super().event(involved, type_=type_, reason=reason, message=message)


class World:
    def __init__(self, adapter: JsonObject) -> None:
        self.kube = PatchingKube()
        self.context = operator_context(self.kube, Engine(), lambda: NOW)
        self.kube.put(adapter)
        self.name = adapter["metadata"]["name"]

    async def reconcile(self) -> dict[str, Any]:
        await reconcile_adapter(self.context, NS, self.name)
        return self.status()

    def status(self) -> dict[str, Any]:
        found = self.kube.find("ModelAdapter", NS, self.name)
        assert found is not None
        status: dict[str, Any] = found.get("status", {})
        return status

    def reasons(self) -> list[str]:
        return [e[2] for e in self.kube.events]

    def kube_event_messages(self) -> list[str]:
        return [e[3] for e in self.kube.events]


def condition(status: dict[str, Any], type_: str) -> tuple[str, str, str]:
    found = next(c for c in status["conditions"] if c["type"] == type_)
    return found["status"], found["reason"], found["message"]


def serving_name(world: World) -> str:
    deployments = [k for k in world.kube.objects if k[0] == "Deployment"]
    assert len(deployments) == 1, deployments
    return deployments[0][2]


FOREIGN_SERVICE_OWNER = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "x", "controller": True}


async def served(world: World) -> str:
    """Reconciles `world` once and returns the name of the Deployment (and Service) it created."""
    await world.reconcile()
    return serving_name(world)


def found(world: World, kind: str, name: str) -> JsonObject:
    obj = world.kube.find(kind, NS, name)
    assert obj is not None, (kind, name)
    return obj


def hand_service_to_another_owner(world: World, name: str) -> None:
    service = found(world, "Service", name)
    service["metadata"]["ownerReferences"] = [FOREIGN_SERVICE_OWNER]
    world.kube.put(service)


async def test_a_scripted_adapter_needs_no_credentials_and_is_ready() -> None:
    world = World(scripted_adapter(namespace=NS))
    status = await world.reconcile()
    assert condition(status, "CredentialsResolved")[:2] == ("True", "NoCredentialsNeeded")
    assert condition(status, "Ready")[:2] == ("True", "AdapterReady")
    assert "scripted model scripted-1" in condition(status, "Ready")[2]
    assert world.reasons() == ["AdapterReady"]
    assert [k for k in world.kube.objects if k[0] in ("Deployment", "Service")] == []


async def test_a_missing_secret_is_a_warning_until_it_appears() -> None:
    world = World(openai_adapter(namespace=NS))
    status = await world.reconcile()
    assert condition(status, "CredentialsResolved")[:2] == ("False", "SecretNotFound")
    assert "openai-key" in condition(status, "CredentialsResolved")[2]
    assert condition(status, "Ready")[:2] == ("False", "CredentialsMissing")
    assert world.kube.events[-1][1:3] == ("Warning", "CredentialsMissing")

    world.kube.put({"kind": "Secret", "metadata": {"name": "openai-key", "namespace": NS}, "data": {"x": ""}})
    status = await world.reconcile()
    assert condition(status, "CredentialsResolved")[:2] == ("False", "SecretKeyMissing")
    assert "apiKey" in condition(status, "CredentialsResolved")[2]

    secret = {
        "kind": "Secret",
        "metadata": {"name": "openai-key", "namespace": NS},
        "data": {"apiKey": "c2s="},
    }
    world.kube.put(secret)
    status = await world.reconcile()
    assert condition(status, "Ready")[:2] == ("True", "AdapterReady")
    assert world.kube.events[-1][1:3] == ("Normal", "AdapterReady")


async def test_an_unchanged_adapter_is_not_written_again() -> None:
    world = World(scripted_adapter(namespace=NS))
    await world.reconcile()
    version = world.kube.objects[("ModelAdapter", NS, "scripted")]["metadata"]["resourceVersion"]
    events = len(world.kube.events)
    await world.reconcile()
    assert world.kube.objects[("ModelAdapter", NS, "scripted")]["metadata"]["resourceVersion"] == version
    assert len(world.kube.events) == events


async def test_a_serving_block_creates_a_deployment_and_a_service_owned_by_the_adapter() -> None:
    world = World(vllm_adapter(namespace=NS))
    status = await world.reconcile()
    name = serving_name(world)
    deployment = world.kube.find("Deployment", NS, name)
    service = world.kube.find("Service", NS, name)
    assert deployment is not None and service is not None
    for child in (deployment, service):
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "ModelAdapter",
            "llama",
            "uid-llama",
            True,
        )
    assert condition(status, "ServingAvailable")[:2] == ("False", "DeploymentProgressing")
    assert condition(status, "Ready")[:2] == ("False", "DeploymentProgressing")
    assert status["serving"]["deploymentName"] == name
    assert {"CreatedDeployment", "CreatedService"} <= set(world.reasons())


async def test_an_available_deployment_makes_the_adapter_ready_at_its_endpoint() -> None:
    world = World(vllm_adapter(namespace=NS))
    name = await served(world)
    deployment = found(world, "Deployment", name)
    deployment["status"] = {"observedGeneration": 1, "availableReplicas": 1, "readyReplicas": 1}
    world.kube.put(deployment)
    status = await world.reconcile()
    assert condition(status, "ServingAvailable")[:2] == ("True", "DeploymentAvailable")
    assert condition(status, "Ready")[:2] == ("True", "AdapterReady")
    assert status["endpoint"] is not None and name in status["endpoint"]
    assert status["serving"]["readyReplicas"] == 1


async def test_a_pod_the_scheduler_cannot_place_is_reported_with_its_message() -> None:
    world = World(vllm_adapter(namespace=NS))
    deployment = found(world, "Deployment", await served(world))
    labels = deployment["spec"]["selector"]["matchLabels"]
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
    }
    world.kube.put(
        {
            "kind": "Pod",
            "metadata": {"name": "llama-pod", "namespace": NS, "labels": labels},
            "status": {"conditions": [unschedulable]},
        }
    )
    status = await world.reconcile()
    assert condition(status, "ServingAvailable")[:2] == ("False", "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in condition(status, "Ready")[2]
    assert world.kube.events[-1][1:3] == ("Warning", "Unschedulable")


async def test_a_deployment_of_another_owner_is_left_alone_and_reported() -> None:
    world = World(vllm_adapter(namespace=NS))
    name = await served(world)
    foreign = found(world, "Deployment", name)
    foreign["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "other", "uid": "other", "controller": True}
    ]
    foreign["spec"]["replicas"] = 7
    world.kube.put(foreign)
    world.kube.patches.clear()
    status = await world.reconcile()
    assert condition(status, "ServingAvailable")[:2] == ("False", "DeploymentConflict")
    assert "ReplicaSet other" in condition(status, "ServingAvailable")[2]
    assert world.kube.patches == []
    still = world.kube.find("Deployment", NS, name)
    assert still is not None and still["spec"]["replicas"] == 7


async def test_a_service_of_another_owner_is_reported_too() -> None:
    world = World(vllm_adapter(namespace=NS))
    name = await served(world)
    hand_service_to_another_owner(world, name)
    status = await world.reconcile()
    assert condition(status, "ServingAvailable")[:2] == ("False", "DeploymentConflict")
    assert condition(status, "ServingAvailable")[2].startswith(f"Service {name} already exists")


async def test_an_orphan_deployment_of_the_name_is_adopted() -> None:
    world = World(vllm_adapter(namespace=NS))
    name = await served(world)
    orphan = found(world, "Deployment", name)
    del orphan["metadata"]["ownerReferences"]
    world.kube.put(orphan)
    await world.reconcile()
    adopted = found(world, "Deployment", name)
    assert adopted["metadata"]["ownerReferences"][0]["uid"] == "uid-llama"
    assert "AdoptedDeployment" in world.reasons()


async def test_a_changed_serving_block_patches_the_deployment() -> None:
    world = World(vllm_adapter(namespace=NS))
    name = await served(world)
    adapter = found(world, "ModelAdapter", "llama")
    world.kube.put(set_field(adapter, "spec.serving.replicas", 2))
    await world.reconcile()
    deployment = world.kube.find("Deployment", NS, name)
    assert deployment is not None and deployment["spec"]["replicas"] == 2
    assert [p[0] for p in world.kube.patches] == ["Deployment"]
    assert "UpdatedDeployment" in world.reasons()


async def test_removing_the_serving_block_deletes_our_children_only() -> None:
    world = World(vllm_adapter(namespace=NS))
    name = await served(world)
    hand_service_to_another_owner(world, name)
    adapter = found(world, "ModelAdapter", "llama")
    del adapter["spec"]["serving"]
    adapter["spec"]["endpoint"] = "http://llama.example:8000/v1"
    world.kube.put(adapter)
    status = await world.reconcile()
    assert world.kube.find("Deployment", NS, name) is None
    assert world.kube.find("Service", NS, name) is not None  # another owner's: kept
    assert ("Deployment", NS, name) in world.kube.deleted
    assert ("Service", NS, name) not in world.kube.deleted
    assert "DeletedDeployment" in world.reasons()
    assert "ServingAvailable" not in [c["type"] for c in status["conditions"]]
    assert status.get("serving") is None


async def test_switching_from_vllm_to_llamacpp_replaces_the_children_and_retires_the_old_ones() -> None:
    world = World(vllm_adapter(namespace=NS))
    old = await served(world)
    adapter = found(world, "ModelAdapter", "llama")
    adapter["spec"]["provider"] = "llamacpp"
    adapter["spec"]["serving"] = {
        "engine": "llamacpp",
        "image": "ghcr.io/ggml-org/llama.cpp:server",
        "modelURI": "hf://ggml-org/tiny/tiny.gguf",
        "gpu": {"count": 0},
    }
    world.kube.put(adapter)
    status = await world.reconcile()
    new = serving_name(world)
    assert (old, new) == ("vllm-llama", "llamacpp-llama")
    assert world.kube.find("Service", NS, old) is None and world.kube.find("Service", NS, new) is not None
    assert status["serving"]["deploymentName"] == new
    assert status["endpoint"] == f"http://{new}.{NS}.svc:8000/v1"
    assert any("switched engines" in reason for reason in world.kube_event_messages())


async def test_a_failed_event_does_not_fail_the_reconcile() -> None:
    world = World(scripted_adapter(namespace=NS))
    world.kube.fail_events = True
    status = await world.reconcile()
    assert condition(status, "Ready")[:2] == ("True", "AdapterReady")
    assert world.kube.events == []


async def test_a_missing_or_deleting_adapter_is_left_alone() -> None:
    world = World(scripted_adapter(namespace=NS))
    await reconcile_adapter(world.context, NS, "absent")
    adapter = world.kube.find("ModelAdapter", NS, "scripted")
    assert adapter is not None
    adapter["metadata"]["deletionTimestamp"] = "2026-03-04T05:00:00Z"
    world.kube.put(adapter)
    assert await world.reconcile() == {}
    assert world.kube.events == []


async def test_an_invalid_adapter_is_a_permanent_error_naming_it() -> None:
    world = World(set_field(scripted_adapter(namespace=NS), "spec.provider", "carrier-pigeon"))
    with pytest.raises(kopf.PermanentError, match="ModelAdapter team/scripted is invalid"):
        await world.reconcile()


async def test_the_handlers_reconcile_and_turn_api_failures_into_retries() -> None:
    world = World(vllm_adapter(namespace=NS))
    registry = kopf.OperatorRegistry()
    register(registry, world.context)
    await handler(registry, "modeladapter-create")(namespace=NS, name="llama")
    assert serving_name(world)
    deployment = world.kube.find("Deployment", NS, serving_name(world))
    assert deployment is not None
    deployment["status"] = {"observedGeneration": 1, "availableReplicas": 1}
    world.kube.put(deployment)
    # The Deployment's event reconciles its owner.
    await handler(registry, "modeladapter-deployment-event")(body=kopf.Body(deployment))
    assert condition(world.status(), "Ready")[:2] == ("True", "AdapterReady")

    async def broken(*_: Any, **__: Any) -> None:
        raise KubeError(503, "ServiceUnavailable", "the API server is restarting")

    world.kube.get = broken  # type: ignore[method-assign]
    with pytest.raises(kopf.TemporaryError, match=r"API request failed: .*restarting"):
        await handler(registry, "modeladapter-resync")(namespace=NS, name="llama")


# --- with Kueue ----------------------------------------------------------------------------------------


def kueue_world(adapter: JsonObject, **settings: Any) -> World:
    world = World(adapter)
    world.context.settings = OperatorSettings(queueing=QueueSettings(**settings))
    return world


def gated_pod(world: World, name: str, uid: str) -> None:
    deployment = found(world, "Deployment", serving_name(world))
    world.kube.put(
        {
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": uid,
                "labels": deployment["spec"]["selector"]["matchLabels"],
            },
            "spec": {"schedulingGates": [{"name": ADMISSION_GATE}]},
            # A gated pod reads as unschedulable to the scheduler; Kueue's word comes first.
            "status": {
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]
            },
        }
    )


async def test_with_kueue_serving_goes_to_the_adapters_team_queue_in_the_highest_lane() -> None:
    world = kueue_world(vllm_adapter(namespace=NS, labels={"jesus.dev/team": "models"}))
    deployment = found(world, "Deployment", await served(world))
    labels = deployment["metadata"]["labels"]
    assert (labels[LABEL_QUEUE_NAME], labels[LABEL_PRIORITY_CLASS]) == ("models", "interactive")
    # The pods get them from Kueue's webhook; the selector (immutable) does not change.
    assert LABEL_QUEUE_NAME not in deployment["spec"]["selector"]["matchLabels"]

    gated_pod(world, "llama-b", "uid-b")
    gated_pod(world, "llama-a", "uid-a")
    pending = {
        "type": "QuotaReserved",
        "status": "False",
        "reason": "Pending",
        "message": "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu",
    }
    world.kube.put(
        {
            "kind": "Workload",
            "metadata": {"name": "pod-llama-a", "namespace": NS, "labels": {LABEL_JOB_UID: "uid-a"}},
            "status": {"conditions": [pending]},
        }
    )
    status = await world.reconcile()
    available, reason, message = condition(status, "ServingAvailable")
    assert (available, reason) == ("False", "QueuedInKueue")
    assert message.startswith("Pending: 2/2 serving pods wait in Kueue: couldn't assign flavors")
    assert message.endswith("(pod llama-a)")
    assert condition(status, "Ready")[0] == "False"


async def test_an_unlabelled_adapter_uses_its_namespaces_queue_and_the_configured_lane() -> None:
    world = kueue_world(vllm_adapter(namespace=NS), queue_name="jesus-{team}", serving_lane="batch")
    labels = found(world, "Deployment", await served(world))["metadata"]["labels"]
    assert (labels[LABEL_QUEUE_NAME], labels[LABEL_PRIORITY_CLASS]) == (f"jesus-{NS}", "batch")


@pytest.mark.parametrize("team", ["Evil_Team", "x" * 63])
async def test_a_team_label_that_makes_no_queue_name_gets_no_deployment(team: str) -> None:
    # Hostile and careless: a label value Kubernetes accepts but no LocalQueue can be named after.
    world = kueue_world(vllm_adapter(namespace=NS, labels={"jesus.dev/team": team}), queue_name="q-{team}")
    status = await world.reconcile()
    assert not [k for k in world.kube.objects if k[0] == "Deployment"]
    available, reason, message = condition(status, "ServingAvailable")
    assert (available, reason) == ("False", "InvalidQueueName")
    assert f"for team {team!r}" in message


async def test_without_kueue_serving_carries_no_queue_labels() -> None:
    world = World(vllm_adapter(namespace=NS, labels={"jesus.dev/team": "models"}))
    labels = found(world, "Deployment", await served(world))["metadata"]["labels"]
    assert LABEL_QUEUE_NAME not in labels and LABEL_PRIORITY_CLASS not in labels


def test_a_serving_lane_that_is_no_lane_is_refused() -> None:
    with pytest.raises(QueueingError, match="--kueue-serving-lane 'urgent' is not one of the lanes"):
        QueueSettings(serving_lane="urgent")


async def test_a_gated_pod_whose_quota_kueue_reserved_is_not_reported_waiting() -> None:
    world = kueue_world(vllm_adapter(namespace=NS))
    await served(world)
    gated_pod(world, "llama-a", "uid-a")
    reserved = {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved", "message": "reserved"}
    world.kube.put(
        {
            "kind": "Workload",
            "metadata": {"name": "pod-llama-a", "namespace": NS, "labels": {LABEL_JOB_UID: "uid-a"}},
            "status": {"conditions": [reserved]},
        }
    )
    status = await world.reconcile()
    assert condition(status, "ServingAvailable")[1] != "QueuedInKueue"
    gated_pod(world, "llama-b", "uid-b")  # no Workload yet
    status = await world.reconcile()
    _, reason, message = condition(status, "ServingAvailable")
    assert reason == "QueuedInKueue"
    assert message == (
        "WorkloadPending: 1/2 serving pods wait in Kueue: waiting for Kueue to create its Workload "
        "(pod llama-b)"
    )
