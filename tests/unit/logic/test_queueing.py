"""Runner Jobs behind Kueue: lanes, LocalQueue names, and what a Workload says (docs/scheduling.md)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.builders.agentrun import reconciled_run

from jesus.api.agentrun import RunnerResources
from jesus.logic import manifests
from jesus.logic.queueing import (
    DEFAULT_LANES,
    LABEL_JOB_UID,
    LABEL_PRIORITY_CLASS,
    LABEL_QUEUE_NAME,
    PRIORITY_MAX,
    PRIORITY_MIN,
    Lane,
    QueueingError,
    QueueSettings,
    QueueState,
    build_priority_classes,
    job_labels,
    lane_for,
    observe_workload,
    parse_lanes,
    queue_name,
    validate_lanes,
    validate_queue_name,
)


@pytest.mark.parametrize(
    ("priority", "lane"),
    [
        (1000, "interactive"),
        (500, "interactive"),
        (499, "batch"),
        (0, "batch"),
        (-1, "background"),
        (-1000, "background"),
    ],
)
def test_the_default_lanes_split_priorities_at_500_and_0(priority: int, lane: str) -> None:
    assert lane_for(priority, DEFAULT_LANES).name == lane


@given(st.integers(PRIORITY_MIN, PRIORITY_MAX))
def test_every_priority_a_run_may_have_falls_in_a_lane_and_a_higher_one_never_in_a_lower_lane(
    priority: int,
) -> None:
    lanes = DEFAULT_LANES
    here = lane_for(priority, lanes)
    assert lane_for(min(priority + 1, PRIORITY_MAX), lanes).value >= here.value


def test_lanes_parse_sorted_highest_first() -> None:
    lanes = parse_lanes("background=-1000:10, urgent=900:99,normal=0:50")
    assert [lane.name for lane in lanes] == ["urgent", "normal", "background"]
    assert lanes[0] == Lane("urgent", 900, 99)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "no priority lanes"),
        ("batch", "is not name=minPriority:value"),
        ("batch=0", "is not name=minPriority:value"),
        ("batch=low:1", "is not name=minPriority:value"),
        # careless: a gap below the lowest lane would leave runs of priority -1000..-1 without a lane
        ("batch=0:10", "priorities -1000..-1 fall in no lane"),
        ("a=-1000:10,b=-1000:20", "start at the same priority -1000"),
        ("a=-1000:10,a=5:20", "given twice"),
        ("hi=5:10,lo=-1000:20", "must have a higher value"),
        ("Batch=-1000:10", "not a valid WorkloadPriorityClass name"),
        ("x=-1000:1,y=2000:5", "outside the priorities a run may have"),
        # hostile: a name that would inject a label or a path
        ("../etc=-1000:1", "not a valid WorkloadPriorityClass name"),
    ],
)
def test_lanes_that_cannot_work_are_refused_naming_why(text: str, says: str) -> None:
    with pytest.raises(QueueingError, match=says.replace(".", r"\.").replace("(", r"\(")):
        parse_lanes(text)


def test_validate_lanes_refuses_none() -> None:
    with pytest.raises(QueueingError, match="no priority lanes"):
        validate_lanes([])


@pytest.mark.parametrize(
    ("rule", "team", "namespace", "name"),
    [
        ("{team}", "ml", "ns", "ml"),
        ("jesus-{team}", "ml", "ns", "jesus-ml"),
        ("{namespace}-q", "ml", "a", "a-q"),
    ],
)
def test_the_queue_name_rule(rule: str, team: str, namespace: str, name: str) -> None:
    assert queue_name(validate_queue_name(rule), team=team, namespace=namespace) == name


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ("{user}", "unknown field"),
        ("{team.__class__}", "unknown field"),  # hostile: attribute access through format
        ("{team", "expected '}'"),
        ("Team-{team}", "does not make a LocalQueue name"),
        ("{team}/x", "does not make a LocalQueue name"),
    ],
)
def test_queue_name_rules_that_cannot_work_are_refused(rule: str, says: str) -> None:
    with pytest.raises(QueueingError, match=says):
        validate_queue_name(rule)


def test_a_rule_that_makes_too_long_a_name_for_one_team_says_so() -> None:
    with pytest.raises(QueueingError, match="for team 'a-very"):
        queue_name("jesus-runners-of-{team}", team="a-very-long-team-name-" + "x" * 40, namespace="ns")


def test_job_labels_name_the_queue_and_the_lane() -> None:
    labels = job_labels(QueueSettings(), team="ml", namespace="ns", priority=600)
    assert labels == {LABEL_QUEUE_NAME: "ml", LABEL_PRIORITY_CLASS: "interactive"}


def test_priority_classes_follow_the_lanes() -> None:
    classes = build_priority_classes(DEFAULT_LANES)
    assert [(c["metadata"]["name"], c["value"]) for c in classes] == [
        ("interactive", 10000),
        ("batch", 1000),
        ("background", 100),
    ]


# --- what the Workload says -------------------------------------------------------------------------

JOB: dict[str, Any] = {"metadata": {"uid": "job-1", "name": "r-a1"}, "spec": {"suspend": True}}


def workload(*conditions: dict[str, Any], uid: str = "job-1", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": {LABEL_JOB_UID: uid}},
        "status": {"conditions": list(conditions), **status},
    }


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def test_no_workload_yet_is_queued_waiting_for_kueue() -> None:
    seen = observe_workload(JOB, [])
    assert (seen.state, seen.reason) == (QueueState.QUEUED, "WorkloadPending")


def test_another_jobs_workload_is_not_this_jobs() -> None:
    other = workload(cond("Admitted", "True", "Admitted"), uid="job-2")
    assert observe_workload(JOB, [other]).state is QueueState.QUEUED


def test_a_pending_workload_gives_kueues_reason_and_message() -> None:
    missing = cond("QuotaReserved", "False", "Inadmissible", "LocalQueue ghost doesn't exist")
    seen = observe_workload(JOB, [workload(missing)])
    assert (seen.state, seen.reason, seen.message) == (
        QueueState.QUEUED,
        "Inadmissible",
        "LocalQueue ghost doesn't exist",
    )


def test_an_admitted_workload_names_its_cluster_queue() -> None:
    admitted = workload(cond("Admitted", "True", "Admitted"), admission={"clusterQueue": "team-a"})
    seen = observe_workload({**JOB, "spec": {"suspend": False}}, [admitted])
    assert (seen.state, seen.cluster_queue) == (QueueState.ADMITTED, "team-a")
    assert "ClusterQueue team-a" in seen.message


def test_an_unsuspended_job_whose_workload_is_gone_was_admitted() -> None:
    assert observe_workload({**JOB, "spec": {"suspend": False}}, []).state is QueueState.ADMITTED


def test_an_evicted_workload_is_preempted_with_kueues_reason() -> None:
    evicted = cond(
        "Evicted", "True", "Preempted", "Preempted to accommodate a workload (UID: x) in the ClusterQueue"
    )
    seen = observe_workload(JOB, [workload(evicted, cond("Admitted", "False", "NoReservation"))])
    assert (seen.state, seen.reason, seen.evictions) == (QueueState.PREEMPTED, "Preempted", 1)
    assert seen.message.startswith("Preempted to accommodate")


def test_a_requeued_workload_that_was_evicted_once_still_counts_as_preempted() -> None:
    # After the eviction Kueue requeues it: Evicted is False again, but the statistics keep the count.
    requeued = workload(
        cond("Evicted", "False", "Requeued"),
        cond("QuotaReserved", "False", "Pending", "couldn't assign flavors"),
        cond("Preempted", "True", "InClusterQueue", "Preempted to accommodate a higher priority Workload"),
        schedulingStats={"evictions": [{"reason": "Preempted", "underlyingCause": "", "count": 2}]},
    )
    seen = observe_workload(JOB, [requeued])
    assert (seen.state, seen.reason, seen.evictions) == (QueueState.PREEMPTED, "InClusterQueue", 2)


@pytest.mark.parametrize(
    "junk",
    [
        {"status": None},
        {"status": {"conditions": ["not a mapping", {"status": "True"}]}},
        {"status": {"schedulingStats": {"evictions": [{"count": "many"}, "x", {"count": -3}]}}},
    ],
)
def test_a_malformed_workload_reads_as_still_queued(junk: dict[str, Any]) -> None:
    seen = observe_workload(JOB, [{"metadata": {"labels": {LABEL_JOB_UID: "job-1"}}, **junk}])
    assert seen.state is QueueState.QUEUED


def test_a_reason_the_api_server_would_refuse_is_replaced() -> None:
    hostile = cond("QuotaReserved", "False", "no spaces allowed; <script>", "m")
    assert observe_workload(JOB, [workload(hostile)]).reason == "Pending"


# --- the runner Job ----------------------------------------------------------------------------------

OWNER = {"apiVersion": "jesus.dev/v1alpha1", "kind": "AgentRun", "metadata": {"name": "r", "uid": "u-1"}}


def test_without_kueue_the_runner_job_starts_at_once_with_no_queue_labels() -> None:
    built = manifests.build_runner_job(
        reconciled_run(), OWNER, 1, manifests.RunnerSettings(), traceparent="t", sealed_token="sealed"
    )
    assert "suspend" not in built["spec"]
    assert not any(key.startswith("kueue.x-k8s.io/") for key in built["metadata"]["labels"])


def test_with_kueue_the_runner_job_is_created_suspended_in_its_queue_and_lane() -> None:
    run = reconciled_run()
    labels = job_labels(QueueSettings(queue_name="jesus-{team}"), team="ml", namespace="ns", priority=-5)
    built = manifests.build_runner_job(
        run, OWNER, 1, manifests.RunnerSettings(), traceparent="t", sealed_token="sealed", queue_labels=labels
    )
    assert built["spec"]["suspend"] is True
    assert built["metadata"]["labels"][LABEL_QUEUE_NAME] == "jesus-ml"
    assert built["metadata"]["labels"][LABEL_PRIORITY_CLASS] == "background"
    # Kueue reads the Job's labels; the pods keep only the run's own.
    assert LABEL_QUEUE_NAME not in built["spec"]["template"]["metadata"]["labels"]


def test_a_run_asking_for_gpus_requests_and_limits_them_and_tolerates_gpu_nodes() -> None:
    run = reconciled_run()
    run.spec.resources = RunnerResources.model_validate({"requests": {"nvidia.com/gpu": 2, "cpu": "2"}})
    pod = manifests.build_runner_job(
        run, OWNER, 1, manifests.RunnerSettings(), traceparent="t", sealed_token="sealed"
    )["spec"]["template"]
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "2"
    assert resources["requests"]["cpu"] == "2"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"][
        "tolerations"
    ]
    assert manifests.runner_gpus(run) == 2


def test_a_run_without_gpus_gets_no_gpu_toleration() -> None:
    pod = manifests.build_runner_job(
        reconciled_run(), OWNER, 1, manifests.RunnerSettings(), traceparent="t", sealed_token="sealed"
    )
    assert "tolerations" not in pod["spec"]["template"]["spec"]
    assert manifests.runner_gpus(reconciled_run()) == 0


@pytest.mark.parametrize("gpus", [-1, 65, "two", 1.5])
def test_a_gpu_count_out_of_range_or_not_a_number_is_refused(gpus: object) -> None:
    with pytest.raises(ValueError, match=r"nvidia\.com/gpu"):
        RunnerResources.model_validate({"requests": {"nvidia.com/gpu": gpus}})
