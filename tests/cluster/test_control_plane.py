"""The control plane is the real thing: CRDs, Jobs, scheduling, GPUs, garbage collection, RBAC."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.cluster.harness import wait_for

from jesus.devcluster import ControlPlane
from jesus.devcluster.nodes import DEFAULT_NODES, GPU_RESOURCE, GPU_TAINT_KEY


def get_json(plane: ControlPlane, *args: str) -> Any:
    result = plane.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def apply(plane: ControlPlane, namespace: str | None, obj: dict[str, Any]) -> None:
    ns = ["-n", namespace] if namespace else []
    plane.kubectl("apply", *ns, "-f", "-", input=json.dumps(obj))


def pod(name: str, *, gpus: int = 0, tolerate_gpu: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox:1.36", "command": ["true"]}
    if gpus:
        container["resources"] = {"limits": {GPU_RESOURCE: str(gpus)}}
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": "Never"}
    if tolerate_gpu:
        spec["tolerations"] = [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def configmap(name: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if owner is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
            }
        ]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": "v"}}


def test_server_reports_the_pinned_version(control_plane: ControlPlane) -> None:
    version = control_plane.api_get("/version")
    assert version["gitVersion"].startswith("v1.34.")
    assert version["major"] == "1"


def test_simulated_nodes_are_ready_with_gpu_capacity(control_plane: ControlPlane) -> None:
    nodes = {n["metadata"]["name"]: n for n in get_json(control_plane, "nodes")["items"]}
    assert set(nodes) >= {shape.name for shape in DEFAULT_NODES}
    gpu_nodes = [n for n in nodes.values() if GPU_RESOURCE in n["status"]["allocatable"]]
    assert len(gpu_nodes) == 1
    gpu = gpu_nodes[0]
    assert gpu["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
    assert int(gpu["status"]["capacity"][GPU_RESOURCE]) >= 1
    assert any(t["key"] == GPU_TAINT_KEY for t in gpu["spec"]["taints"])
    for node in nodes.values():
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True"


def test_crd_installs_and_is_served(control_plane: ControlPlane, namespace: str) -> None:
    group = f"t{uuid.uuid4().hex[:8]}.example.test"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    apply(control_plane, None, crd)
    control_plane.kubectl("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=30s")
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}}
    wait_for(
        lambda: (
            control_plane.kubectl(
                "apply", "-n", namespace, "-f", "-", input=json.dumps(widget), check=False
            ).returncode
            == 0
        ),
        what="the CRD to be served",
    )
    assert get_json(control_plane, "-n", namespace, f"widgets.{group}", "w")["spec"]["size"] == 3
    bad = {**widget, "metadata": {"name": "bad"}, "spec": {"size": 0}}
    rejected = control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
    assert rejected.returncode != 0
    assert "spec.size" in rejected.stderr
    control_plane.kubectl("delete", "crd", f"widgets.{group}", "--wait=false")


def test_job_pod_is_scheduled_on_a_simulated_node_and_completes(
    control_plane: ControlPlane, namespace: str
) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "hello"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1.36"}]}
            },
        },
    }
    apply(control_plane, namespace, job)
    control_plane.kubectl("wait", "-n", namespace, "--for=condition=Complete", "job/hello", "--timeout=60s")
    pods = get_json(control_plane, "-n", namespace, "pods", "-l", "job-name=hello")["items"]
    assert len(pods) == 1
    assert pods[0]["spec"]["nodeName"] in {shape.name for shape in DEFAULT_NODES}
    assert pods[0]["status"]["phase"] == "Succeeded"


def test_pod_asking_for_too_many_gpus_stays_pending_with_the_schedulers_reason(
    control_plane: ControlPlane, namespace: str
) -> None:
    capacity = max(int(s.gpus) for s in DEFAULT_NODES)
    apply(control_plane, namespace, pod("greedy", gpus=capacity + 1, tolerate_gpu=True))

    def unschedulable() -> dict[str, Any] | None:
        status = get_json(control_plane, "-n", namespace, "pod", "greedy")["status"]
        for condition in status.get("conditions", []):
            if condition["type"] == "PodScheduled" and condition.get("reason") == "Unschedulable":
                return dict(condition)
        return None

    condition = wait_for(unschedulable, what="the scheduler to report the pod unschedulable")
    assert f"Insufficient {GPU_RESOURCE}" in condition["message"]
    assert get_json(control_plane, "-n", namespace, "pod", "greedy")["status"]["phase"] == "Pending"


def test_pod_asking_for_one_gpu_lands_on_the_gpu_node(control_plane: ControlPlane, namespace: str) -> None:
    apply(control_plane, namespace, pod("one-gpu", gpus=1, tolerate_gpu=True))
    node = wait_for(
        lambda: get_json(control_plane, "-n", namespace, "pod", "one-gpu")["spec"].get("nodeName"),
        what="the GPU pod to be scheduled",
    )
    gpu_nodes = {s.name for s in DEFAULT_NODES if s.gpus}
    assert node in gpu_nodes
    wait_for(
        lambda: get_json(control_plane, "-n", namespace, "pod", "one-gpu")["status"]["phase"] == "Running",
        what="the GPU pod to run",
    )


def test_pod_without_gpus_does_not_land_on_the_tainted_gpu_node(
    control_plane: ControlPlane, namespace: str
) -> None:
    names = [f"plain-{i}" for i in range(4)]
    for name in names:
        apply(control_plane, namespace, pod(name))
    gpu_nodes = {s.name for s in DEFAULT_NODES if s.gpus}
    for name in names:
        node = wait_for(
            lambda name=name: get_json(control_plane, "-n", namespace, "pod", name)["spec"].get("nodeName"),
            what=f"pod {name} to be scheduled",
        )
        assert node not in gpu_nodes


def test_deleting_an_owner_garbage_collects_its_dependents(
    control_plane: ControlPlane, namespace: str
) -> None:
    apply(control_plane, namespace, configmap("owner"))
    owner = get_json(control_plane, "-n", namespace, "configmap", "owner")
    apply(control_plane, namespace, configmap("dependent", owner))
    assert get_json(control_plane, "-n", namespace, "configmap", "dependent") is not None
    control_plane.kubectl("delete", "-n", namespace, "configmap", "owner")
    wait_for(
        lambda: get_json(control_plane, "-n", namespace, "configmap", "dependent") is None,
        what="the garbage collector to delete the dependent",
    )


def test_deleting_a_namespace_finishes(control_plane: ControlPlane) -> None:
    name = f"doomed-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    apply(control_plane, name, configmap("something"))
    apply(control_plane, name, pod("something"))
    control_plane.kubectl("delete", "namespace", name, "--wait=false")
    wait_for(
        lambda: get_json(control_plane, "namespace", name) is None,
        timeout=60,
        what="the namespace to go away",
    )


def test_rbac_denies_an_unprivileged_service_account(control_plane: ControlPlane, namespace: str) -> None:
    wait_for(
        lambda: get_json(control_plane, "-n", namespace, "serviceaccount", "default"), what="the default SA"
    )
    who = f"--as=system:serviceaccount:{namespace}:default"
    can_i = control_plane.kubectl("auth", "can-i", "create", "pods", "-n", namespace, who, check=False)
    assert can_i.stdout.strip() == "no"
    denied = control_plane.kubectl(
        "apply", "-n", namespace, who, "-f", "-", input=json.dumps(configmap("x")), check=False
    )
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    # The admin may, so the denial is RBAC's and not a broken server.
    assert control_plane.kubectl("auth", "can-i", "create", "pods", "-n", namespace).stdout.strip() == "yes"
