"""Self-hosted models on the real API server: the operator creates vLLM Deployments and Services, the
scheduler places them on the kwok GPU node (or cannot, and the adapter says why)."""

from __future__ import annotations

from typing import Any

from tests.builders.adapters import vllm_adapter
from tests.builders.manifest import drop_field, set_field
from tests.cluster.operator_process import (
    OperatorProcess,
    apply_objects,
    condition,
    get_object,
    wait_for,
)

from jesus.devcluster import ControlPlane
from jesus.devcluster.nodes import DEFAULT_NODES, GPU_RESOURCE
from jesus.logic.serving import serving_name

GPU_NODES = {shape.name: shape for shape in DEFAULT_NODES if shape.gpus}
GPU_NODE = next(iter(GPU_NODES.values()))


def adapter(
    name: str, *, gpus: int = 1, gpu_type: str | None = GPU_NODE.gpu_product, replicas: int = 1
) -> Any:
    obj = set_field(vllm_adapter(name), "spec.serving.gpu.count", gpus)
    obj = set_field(obj, "spec.serving.replicas", replicas)
    return (
        set_field(obj, "spec.serving.gpu.type", gpu_type)
        if gpu_type
        else drop_field(obj, "spec.serving.gpu.type")
    )


def serving_gone(plane: ControlPlane, namespace: str, name: str) -> bool:
    """Whether the Deployment and the Service `name` are both gone."""
    return (
        get_object(plane, namespace, "deployment", name) is None
        and get_object(plane, namespace, "service", name) is None
    )


def ready_with(plane: ControlPlane, namespace: str, name: str, status: str, reason: str | None = None) -> Any:
    obj = get_object(plane, namespace, "modeladapter", name)
    ready = condition(obj, "Ready")
    if ready is None or ready["status"] != status or (reason is not None and ready["reason"] != reason):
        return None
    return obj


def serving_pods(plane: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    pods = get_object(plane, namespace, "pods", "-l", f"app.kubernetes.io/instance={serving_name(name)}")
    return list(pods["items"]) if pods else []


def test_a_vllm_adapter_lands_on_the_gpu_node_and_becomes_ready(
    crds: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply_objects(crds, namespace, adapter("llama"))
    obj = wait_for(
        lambda: ready_with(crds, namespace, "llama", "True"),
        what="ModelAdapter llama Ready",
        operator=operator,
    )
    status = obj["status"]
    name = serving_name("llama")
    assert status["endpoint"] == f"http://{name}.{namespace}.svc:8000/v1"
    assert status["selfHosted"] is True
    assert status["serving"]["readyReplicas"] == 1
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert condition(obj, "ServingAvailable")["reason"] == "DeploymentAvailable"

    deployment = get_object(crds, namespace, "deployment", name)
    [owner] = deployment["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("ModelAdapter", obj["metadata"]["uid"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"][GPU_RESOURCE] == "1"
    assert get_object(crds, namespace, "service", name)["spec"]["ports"][0]["port"] == 8000
    [pod] = serving_pods(crds, namespace, "llama")
    assert pod["spec"]["nodeName"] == GPU_NODE.name


def test_an_adapter_asking_for_more_gpus_than_any_node_has_stays_pending_with_the_schedulers_reason(
    crds: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    too_many = GPU_NODE.gpus * 2
    apply_objects(crds, namespace, adapter("huge", gpus=too_many))
    obj = wait_for(
        lambda: ready_with(crds, namespace, "huge", "False", "Unschedulable"),
        what="ModelAdapter huge Unschedulable",
        operator=operator,
    )
    message = condition(obj, "Ready")["message"]
    assert f"Insufficient {GPU_RESOURCE}" in message
    assert "nodes are available" in message
    [pod] = serving_pods(crds, namespace, "huge")
    assert "nodeName" not in pod["spec"]
    assert pod["status"]["phase"] == "Pending"
    assert obj["status"]["serving"]["readyReplicas"] == 0


def test_an_adapter_asking_for_a_gpu_type_no_node_has_stays_pending(
    crds: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply_objects(crds, namespace, adapter("a100", gpu_type="NVIDIA-A100-SXM4-40GB"))
    obj = wait_for(
        lambda: ready_with(crds, namespace, "a100", "False", "Unschedulable"),
        what="ModelAdapter a100 Unschedulable",
        operator=operator,
    )
    assert "node affinity" in condition(obj, "Ready")["message"]


def test_a_spec_change_updates_the_deployment_and_deleting_the_adapter_removes_it(
    crds: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply_objects(crds, namespace, adapter("resize", gpu_type=None))
    wait_for(lambda: ready_with(crds, namespace, "resize", "True"), what="resize Ready", operator=operator)
    name = serving_name("resize")
    first = get_object(crds, namespace, "deployment", name)
    assert "affinity" not in first["spec"]["template"]["spec"]

    apply_objects(crds, namespace, adapter("resize", replicas=2))
    wait_for(
        lambda: (
            (obj := ready_with(crds, namespace, "resize", "True"))
            and obj["status"]["serving"]["readyReplicas"] == 2
        ),
        what="resize Ready with 2 replicas",
        operator=operator,
    )
    deployment = get_object(crds, namespace, "deployment", name)
    assert deployment["metadata"]["uid"] == first["metadata"]["uid"]
    assert deployment["spec"]["replicas"] == 2
    assert "affinity" in deployment["spec"]["template"]["spec"]

    # Not kubectl's own wait: if the operator never lets the adapter go, the failure shows its log.
    crds.kubectl("delete", "-n", namespace, "modeladapter", "resize", "--wait=false")
    wait_for(
        lambda: get_object(crds, namespace, "modeladapter", "resize") is None,
        what="the adapter's finalizer to be removed",
        operator=operator,
    )
    wait_for(
        lambda: serving_gone(crds, namespace, name),
        what="the Deployment and Service to be garbage-collected",
        operator=operator,
    )


def test_dropping_the_serving_block_deletes_the_deployment_and_service(
    crds: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply_objects(crds, namespace, adapter("moving"))
    wait_for(lambda: ready_with(crds, namespace, "moving", "True"), what="moving Ready", operator=operator)
    name = serving_name("moving")
    external = set_field(
        drop_field(vllm_adapter("moving"), "spec.serving"), "spec.endpoint", "http://llm.internal:8000/v1"
    )
    apply_objects(crds, namespace, external)
    wait_for(
        lambda: serving_gone(crds, namespace, name),
        what="the Deployment and Service of a model no longer served to be deleted",
        operator=operator,
    )
    obj = wait_for(
        lambda: (
            (found := ready_with(crds, namespace, "moving", "True"))
            and "serving" not in found["status"]
            and found
        ),
        what="moving Ready on its external endpoint",
        operator=operator,
    )
    assert obj["status"]["endpoint"] == "http://llm.internal:8000/v1"
    assert condition(obj, "ServingAvailable") is None
