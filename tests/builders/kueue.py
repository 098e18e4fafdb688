"""Kueue objects for the cluster tier: a ResourceFlavor, ClusterQueues with CPU, memory and GPU quotas
in a cohort, a team's LocalQueue, the lanes' WorkloadPriorityClasses."""

from __future__ import annotations

import json
from typing import Any

from jesus.logic.queueing import WORKLOAD_API_VERSION

Obj = dict[str, Any]
FLAVOR = "jesus-default"
GPU = "nvidia.com/gpu"


def resource_flavor(name: str = FLAVOR) -> Obj:
    """A ResourceFlavor with no node labels: quota without placement (the scheduler places pods)."""
    return {"apiVersion": WORKLOAD_API_VERSION, "kind": "ResourceFlavor", "metadata": {"name": name}}


def cluster_queue(
    name: str,
    *,
    gpus: int,
    cohort: str | None = None,
    cpu: str = "16",
    memory: str = "64Gi",
    reclaim: str = "Any",
) -> Obj:
    """A team's ClusterQueue: CPU, memory and GPU quotas in `cohort`; it preempts lower lanes in
    itself and takes back what other queues of the cohort borrowed from it."""
    spec: Obj = {
        "namespaceSelector": {},
        "queueingStrategy": "BestEffortFIFO",
        "resourceGroups": [
            {
                "coveredResources": ["cpu", "memory", GPU],
                "flavors": [
                    {
                        "name": FLAVOR,
                        "resources": [
                            {"name": "cpu", "nominalQuota": cpu},
                            {"name": "memory", "nominalQuota": memory},
                            {"name": GPU, "nominalQuota": str(gpus)},
                        ],
                    }
                ],
            }
        ],
        "preemption": {"withinClusterQueue": "LowerPriority", "reclaimWithinCohort": reclaim},
    }
    if cohort is not None:
        spec["cohortName"] = cohort
    return {
        "apiVersion": WORKLOAD_API_VERSION,
        "kind": "ClusterQueue",
        "metadata": {"name": name},
        "spec": spec,
    }


def local_queue(name: str, cluster_queue_name: str) -> Obj:
    """A team's LocalQueue (namespaced) onto `cluster_queue_name`."""
    return {
        "apiVersion": WORKLOAD_API_VERSION,
        "kind": "LocalQueue",
        "metadata": {"name": name},
        "spec": {"clusterQueue": cluster_queue_name},
    }


def runner_result_status(pod: Obj, cost_micros: int) -> Obj:
    """The status patch that ends a runner pod as the runner (and the stand-in runtime) would:
    succeeded, with one model call costing `cost_micros` in its termination message."""
    call = {
        "adapter": "steady",
        "model": "steady-model",
        "usage": {"inputTokens": 10, "outputTokens": 5},
        "costMicros": cost_micros,
        "durationMilliseconds": 3,
    }
    result = {
        "v": 1,
        "outcome": "Succeeded",
        "usage": call["usage"],
        "costMicros": cost_micros,
        "calls": [call],
        "artifacts": [],
    }
    container = pod["spec"]["containers"][0]
    started = pod["status"].get("startTime")
    terminated = {
        "exitCode": 0,
        "reason": "Completed",
        "message": json.dumps(result),
        "startedAt": started,
        "finishedAt": started,
    }
    return {
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {"terminated": terminated},
                }
            ],
        }
    }
