"""What the serving status says about a Deployment and its pods in the states a rollout passes through,
and the adapters the serving builders refuse (with the field that is missing)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.builders.adapters import scripted_adapter, vllm_adapter
from tests.builders.manifest import drop_field, set_field

from jesus.api.modeladapter import ModelAdapter
from jesus.logic.serving import (
    build_inference_deployment,
    serving_status,
    unschedulable_message,
    waiting_message,
)

NOW = datetime(2026, 2, 3, 4, 5, tzinfo=UTC)


def adapter(**fields: Any) -> ModelAdapter:
    obj = vllm_adapter(namespace="team")
    for path, value in fields.items():
        obj = set_field(obj, path.replace("__", "."), value)
    return ModelAdapter.model_validate(obj)


def deployment(status: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": "d", "generation": generation}, "status": status}


def pod(name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status}


def available(conditions: list[Any]) -> tuple[str, str, str]:
    found = next(c for c in conditions if c.type == "ServingAvailable")
    return str(found.status), str(found.reason), found.message


def test_a_rollout_past_its_deadline_is_unavailable_with_the_controllers_message() -> None:
    stuck = deployment(
        {
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": "",
                }
            ],
        }
    )
    conditions, _ = serving_status(adapter(), stuck, [], now=NOW)
    assert available(conditions) == (
        "False",
        "DeploymentUnavailable",
        "the Deployment exceeded its progress deadline",
    )


def test_a_replica_failure_is_unavailable_with_its_message() -> None:
    quota = deployment(
        {"conditions": [{"type": "ReplicaFailure", "status": "True", "message": "exceeded quota: gpu"}]}
    )
    conditions, _ = serving_status(adapter(), quota, [], now=NOW)
    assert available(conditions) == ("False", "DeploymentUnavailable", "exceeded quota: gpu")


def test_counts_of_an_older_generation_do_not_make_it_available() -> None:
    old = deployment({"observedGeneration": 1, "availableReplicas": 1, "readyReplicas": 1}, generation=2)
    conditions, observed = serving_status(adapter(), old, [], now=NOW)
    assert available(conditions) == ("False", "DeploymentProgressing", "1/1 replicas available, 1 ready")
    assert observed.ready_replicas == 1


def test_scaled_to_zero_is_said_so() -> None:
    conditions, observed = serving_status(adapter(spec__serving__replicas=0), deployment({}), [], now=NOW)
    assert available(conditions)[:2] == ("False", "ScaledToZero")
    assert observed.replicas == 0


def test_the_first_unplaced_pod_by_name_is_reported_and_deleting_ones_are_skipped() -> None:
    unplaced = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
    pods = [
        pod("b", conditions=[{**unplaced, "message": "0/3 nodes: no GPU"}]),
        {
            **pod("a", conditions=[unplaced]),
            "metadata": {"name": "a", "deletionTimestamp": "2026-02-03T04:00:00Z"},
        },
        pod("c", conditions=[{"type": "PodScheduled", "status": "True"}]),
    ]
    assert unschedulable_message(pods) == "0/3 nodes: no GPU (pod b)"
    assert unschedulable_message([pod("z", conditions=[unplaced])]) == "Unschedulable (pod z)"
    assert unschedulable_message([pod("y", conditions=[{"type": "PodScheduled", "status": "False"}])]) == (
        "the scheduler cannot place it (pod y)"
    )
    assert unschedulable_message([pod("x")]) is None


def test_a_container_that_waits_for_a_reason_is_named() -> None:
    creating = {"name": "vllm", "state": {"waiting": {"reason": "ContainerCreating"}}}
    backoff = {"name": "vllm", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such tag"}}}
    crash = {"name": "vllm", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    assert waiting_message([pod("p", containerStatuses=[creating])]) is None
    assert waiting_message([pod("p", containerStatuses=[creating, backoff])]) == (
        "container vllm of pod p is ImagePullBackOff: no such tag"
    )
    assert (
        waiting_message([pod("q", containerStatuses=[crash])])
        == "container vllm of pod q is CrashLoopBackOff"
    )


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (scripted_adapter(namespace="team"), "ModelAdapter 'scripted' has no serving block"),
        (drop_field(vllm_adapter(namespace="team"), "metadata.namespace"), "needs metadata.namespace"),
    ],
)
def test_the_builders_refuse_an_adapter_they_cannot_serve(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_inference_deployment(ModelAdapter.model_validate(obj))
