"""The simulated nodes kwok manages: CPU nodes, a GPU node labelled as real GPU nodes are, and the
sandbox node, whose pods the sandbox kubelet (`jesus.devcluster.kubelet`) runs for real."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
# The node whose pods run in sandboxes: kwok's pod stages leave its pods alone (kwok-stages.yaml), and
# its taint keeps every pod off it that does not ask for it (a toleration and this node selector).
SANDBOX_NODE = "kwok-sandbox-0"
SANDBOX_LABEL = "jesus.dev/sandbox"
SANDBOX_TAINT_KEY = "jesus.dev/sandbox"


@dataclass(frozen=True)
class NodeShape:
    """What one simulated node offers."""

    name: str
    cpu: str = "16"
    memory: str = "64Gi"
    pods: str = "110"
    gpus: int = 0
    gpu_product: str = "NVIDIA-H100-80GB-HBM3"
    gpu_memory_mib: int = 81559
    instance_type: str = "m6i.4xlarge"
    sandbox: bool = False
    extra_labels: dict[str, str] = field(default_factory=dict)


DEFAULT_NODES = (
    NodeShape("kwok-cpu-0"),
    NodeShape("kwok-cpu-1"),
    NodeShape("kwok-gpu-0", cpu="52", memory="900Gi", gpus=8, instance_type="p5.48xlarge"),
    NodeShape(SANDBOX_NODE, sandbox=True),
)


def sandbox_placement() -> dict[str, Any]:
    """The pod spec fields (nodeSelector, tolerations) that put a pod on the sandbox node; the
    chart's `<component>.nodeSelector` and `.tolerations` values take them as they are."""
    return {
        "nodeSelector": {SANDBOX_LABEL: "true"},
        "tolerations": [{"key": SANDBOX_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
    }


def build_node(shape: NodeShape) -> dict[str, Any]:
    """The Node object for `shape`, with status capacity, as kwok expects it at creation."""
    labels = {
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": shape.name,
        "node.kubernetes.io/instance-type": shape.instance_type,
        "type": "kwok",
        **shape.extra_labels,
    }
    capacity = {"cpu": shape.cpu, "memory": shape.memory, "pods": shape.pods}
    taints: list[dict[str, str]] = []
    if shape.gpus:
        # The labels NVIDIA's GPU feature discovery puts on a GPU node, and the taint GPU node pools
        # carry so that only pods that tolerate it (and so ask for GPUs) land there.
        labels.update(
            {
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": shape.gpu_product,
                "nvidia.com/gpu.count": str(shape.gpus),
                "nvidia.com/gpu.memory": str(shape.gpu_memory_mib),
                "nvidia.com/cuda.driver.major": "550",
            }
        )
        capacity[GPU_RESOURCE] = str(shape.gpus)
        taints.append({"key": GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"})
    if shape.sandbox:
        labels[SANDBOX_LABEL] = "true"
        taints.append({"key": SANDBOX_TAINT_KEY, "value": "true", "effect": "NoSchedule"})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": shape.name,
            "labels": labels,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"taints": taints} if taints else {},
        "status": {"capacity": capacity, "allocatable": dict(capacity), "phase": "Pending"},
    }
