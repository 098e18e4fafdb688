"""Runner Jobs behind Kueue on the real API server, with Kueue's controller manager and webhooks
(`ControlPlane(kueue=True)`) and kwok's GPU node: lanes, per-team ClusterQueues in a cohort, preemption,
borrowing and reclaim, and the operator's own admission in front of it all (docs/scheduling.md).

Runner pods are not run here (no stand-in runtime): they stay Running on kwok, holding their quota,
until a test ends one by writing the runner's result into its status, as the runtime would.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.builders.adapters import answering_adapter, llamacpp_adapter
from tests.builders.agentrun import hello_run
from tests.builders.budget import team_budget
from tests.builders.kueue import cluster_queue, local_queue, resource_flavor, runner_result_status
from tests.builders.manifest import set_field
from tests.builders.routes import failover_route
from tests.cluster.harness import JESUS, OperatorWorld, apply, get, operator_world, wait_for

from jesus.devcluster import ControlPlane
from jesus.devcluster.nodes import DEFAULT_NODES
from jesus.logic import sealing
from jesus.logic.queueing import ADMISSION_GATE, DEFAULT_LANES, build_priority_classes
from jesus.logic.sealing import RUNNER_KEY_SECRET
from jesus.logic.serving import ENGINE_LLAMACPP, serving_name

GPU_SHAPE = next(shape for shape in DEFAULT_NODES if shape.gpus)
GPU_NODE = GPU_SHAPE.name
HELD = 1_000_000  # every run here may cost at most 1.00

OBJECTS = [
    answering_adapter("steady", replies=200),
    failover_route("simple", "steady"),
    *(team_budget(team, team, "100.00") for team in ("solo", "share-a", "share-b", "ghost")),
    team_budget("tiny", "tiny", "0.05"),
    local_queue("solo", "solo"),
    local_queue("share-a", "share-a"),
    local_queue("share-b", "share-b"),
    local_queue("tiny", "solo"),
    local_queue("models", "models"),
]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of its own with Kueue, its lanes, a flavor and the teams' ClusterQueues."""
    plane = ControlPlane(tmp_path_factory.mktemp("kueue-plane"), die_with_parent=True, kueue=True)
    plane.start()
    try:
        cluster_objects = [
            resource_flavor(),
            *build_priority_classes(DEFAULT_LANES),
            cluster_queue("solo", gpus=1),
            cluster_queue("share-a", gpus=1, cohort="share"),
            cluster_queue("share-b", gpus=1, cohort="share"),
            cluster_queue("models", gpus=1),
        ]
        listing = {"apiVersion": "v1", "kind": "List", "items": cluster_objects}
        plane.kubectl("apply", "-f", "-", input=json.dumps(listing))
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def world(plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorWorld]:
    with operator_world(
        plane, tmp_path_factory.mktemp("kueue"), "kueue", OBJECTS, operator_args=("--kueue",), runtime=False
    ) as world:
        yield world


def gpu_run(name: str, team: str, priority: int, *, retries: int = 1, gpus: int = 1) -> dict[str, Any]:
    run = hello_run(
        name, team=team, route_name="simple", max_cost="1.00", retries=retries, timeout_seconds=600
    )
    run["spec"]["priority"] = priority
    if gpus:
        run["spec"]["resources"] = {"requests": {"nvidia.com/gpu": gpus}}
    return run


def condition(world: OperatorWorld, name: str, type_: str) -> dict[str, Any] | None:
    return next((c for c in world.run_status(name).get("conditions", []) if c["type"] == type_), None)


def wait_queued(world: OperatorWorld, name: str, status: str, reason: str | None = None) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        queued = condition(world, name, "Queued")
        if queued and queued["status"] == status and reason in (None, queued["reason"]):
            return queued
        return None

    result: dict[str, Any] = wait_for(
        check, timeout=90, what=f"AgentRun {name}: Queued={status} {reason or ''}", describe=world.describe
    )
    return result


def attempts(world: OperatorWorld, name: str) -> list[dict[str, Any]]:
    return list(world.run_status(name).get("attempts", []))


def running_pod(world: OperatorWorld, job: str) -> dict[str, Any] | None:
    pods = get(world.plane, world.namespace, "pods", f"-l=job-name={job}") or {"items": []}
    live = [
        p
        for p in pods["items"]
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]
    return live[0] if live else None


def finish(world: OperatorWorld, job: str, cost_micros: int) -> None:
    """End the runner pod of `job` as the runner would: succeeded, one call costing `cost_micros`."""
    pod = wait_for(
        lambda: running_pod(world, job), timeout=60, what=f"a running pod of {job}", describe=world.describe
    )
    status = runner_result_status(pod, cost_micros)
    world.plane.kubectl(
        "patch",
        "pod",
        "-n",
        world.namespace,
        pod["metadata"]["name"],
        "--subresource=status",
        "--type=merge",
        f"--patch={json.dumps(status)}",
    )


def call_router(world: OperatorWorld, job: str) -> int:
    """One model call through the router with the token of `job`'s attempt, as its runner would make
    it; what it cost."""
    found, key = (
        get(world.plane, world.namespace, "job", job),
        get(world.plane, world.namespace, "secret", RUNNER_KEY_SECRET),
    )
    assert found is not None and key is not None, f"no Job {job} or no runner key"
    sealed = sealing.sealed_token_of(found)
    assert sealed is not None, f"no sealed token in Job {job}"
    token = sealing.unseal(sealing.secret_key(key), sealed)
    answer = httpx.post(
        f"http://127.0.0.1:{world.router_port}/v1/chat/completions",
        json={"model": "any", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    cost = int(answer.json()["jesus"]["costMicros"])
    assert cost > 0
    return cost


def budget_figures(world: OperatorWorld, name: str) -> tuple[int, int]:
    status = (get(world.plane, world.namespace, "budget", name) or {}).get("status", {})
    return int(status.get("spentMicros", 0)), int(status.get("reservedMicros", 0))


def kubectl_json(plane: ControlPlane, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(plane.kubectl("get", *args, "-o", "json").stdout)
    return result


def workloads_of(world: OperatorWorld, run: str) -> list[dict[str, Any]]:
    items = kubectl_json(world.plane, "-n", world.namespace, "workloads.kueue.x-k8s.io")["items"]
    return [
        w
        for w in items
        if any(o.get("name", "").startswith(f"{run}-a") for o in w["metadata"].get("ownerReferences", []))
    ]


def test_an_interactive_run_preempts_a_background_one_which_is_retried_and_charged_once(
    world: OperatorWorld,
) -> None:
    world.apply(gpu_run("crawl", "solo", priority=-100))
    admitted = wait_queued(world, "crawl", "False", "Admitted")
    assert "ClusterQueue solo" in admitted["message"]
    job = get(world.plane, world.namespace, "job", "crawl-a1")
    assert job is not None
    labels = job["metadata"]["labels"]
    assert (labels["kueue.x-k8s.io/queue-name"], labels["kueue.x-k8s.io/priority-class"]) == (
        "solo",
        "background",
    )
    pod = wait_for(
        lambda: running_pod(world, "crawl-a1"), timeout=60, what="crawl's pod", describe=world.describe
    )
    assert pod["spec"]["nodeName"] == GPU_NODE

    # The first attempt spends through the router; its pod will be gone before it can report it.
    spent = call_router(world, "crawl-a1")

    # The GPU quota (1) is full: the interactive run of the same team takes it.
    world.apply(gpu_run("chat", "solo", priority=800))
    wait_queued(world, "chat", "False", "Admitted")
    first = wait_for(
        lambda: (a := attempts(world, "crawl")) and a[0].get("outcome") == "Failed" and a[0],
        timeout=90,
        what="crawl's first attempt to end preempted",
        describe=world.describe,
    )
    assert "preempted by Kueue" in first["message"]
    # What the router metered for the preempted attempt's token, recorded once on the attempt.
    assert (first["meteredCostMicros"], first["meteredTokens"]) == (spent, 1200)
    # Its retry waits in Kueue, saying why, while the interactive run runs on the GPU node.
    waiting = wait_queued(world, "crawl", "True")
    assert len(attempts(world, "crawl")) == 2
    assert waiting["reason"] in ("Pending", "WorkloadPending")
    assert world.run_status("crawl")["phase"] == "Running"
    chat_pod = wait_for(
        lambda: running_pod(world, "chat-a1"), timeout=60, what="chat's pod", describe=world.describe
    )
    assert chat_pod["spec"]["nodeName"] == GPU_NODE
    # One hold per run, through the preemption and the retry.
    assert budget_figures(world, "solo") == (0, 2 * HELD)

    finish(world, "chat-a1", 300_000)
    assert world.wait_phase("chat", "Succeeded", "Failed", timeout=90)["phase"] == "Succeeded"
    wait_queued(world, "crawl", "False", "Admitted")
    finish(world, "crawl-a2", 200_000)
    status = world.wait_phase("crawl", "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Succeeded", world.describe()
    # The reported call of the second attempt and the metered spend of the preempted one, once each.
    assert status["costMicros"] == 200_000 + spent
    assert [a["outcome"] for a in status["attempts"]] == ["Failed", "Succeeded"]
    # Charged once each, nothing left held: the Budget's figures are exact.
    wait_for(
        lambda: budget_figures(world, "solo") == (500_000 + spent, 0),
        timeout=30,
        what=f"the solo budget at 0.50 + {spent} micros spent, nothing held",
        describe=lambda: f"{budget_figures(world, 'solo')}\n{world.describe()}",
    )


def test_a_team_borrows_an_idle_teams_gpu_and_gives_it_back_when_that_team_submits(
    world: OperatorWorld,
) -> None:
    world.apply(gpu_run("a-one", "share-a", priority=0), gpu_run("a-two", "share-a", priority=0))
    # share-a's own GPU and share-b's idle one: both admitted.
    wait_queued(world, "a-one", "False", "Admitted")
    wait_queued(world, "a-two", "False", "Admitted")

    def borrowed_gpus() -> str:
        queue = kubectl_json(world.plane, "clusterqueue.kueue.x-k8s.io", "share-a")
        reservations = queue.get("status", {}).get("flavorsReservation", [])
        gpu = [r for f in reservations for r in f["resources"] if r["name"] == "nvidia.com/gpu"]
        return str(gpu[0]["borrowed"]) if gpu else ""

    # Kueue writes a ClusterQueue's figures a moment after it admits.
    wait_for(
        lambda: borrowed_gpus() == "1", timeout=30, what="share-a to borrow one GPU", describe=borrowed_gpus
    )

    world.apply(gpu_run("b-one", "share-b", priority=0))
    wait_queued(world, "b-one", "False", "Admitted")
    preempted = wait_for(
        lambda: [
            n for n in ("a-one", "a-two") if (a := attempts(world, n)) and a[0].get("outcome") == "Failed"
        ],
        timeout=90,
        what="share-a to give back the borrowed GPU",
        describe=world.describe,
    )
    assert len(preempted) == 1
    assert "preempted by Kueue" in attempts(world, preempted[0])[0]["message"]
    wait_queued(world, preempted[0], "True")


def test_budgets_and_policy_refuse_before_kueue_sees_anything(world: OperatorWorld) -> None:
    # The default policy caps a run at 25.00 (policies/data.json); tiny's Budget holds 0.05.
    denied = hello_run("too-dear", team="solo", route_name="simple", max_cost="99.00")
    broke = gpu_run("broke", "tiny", priority=800)
    world.apply(denied, broke)
    assert world.wait_phase("too-dear", "Denied")["phase"] == "Denied"
    world.wait_phase("broke", "Waiting")
    for name in ("too-dear", "broke"):
        assert "jobName" not in world.run_status(name)
        assert get(world.plane, world.namespace, "job", f"{name}-a1") is None
        assert workloads_of(world, name) == []
        assert condition(world, name, "Queued") is None


def test_a_team_without_a_local_queue_waits_saying_so_and_runs_once_it_has_one(world: OperatorWorld) -> None:
    world.apply(gpu_run("lost", "ghost", priority=0, gpus=0))
    queued = wait_queued(world, "lost", "True", "Inadmissible")
    assert "LocalQueue ghost doesn't exist" in queued["message"]
    assert world.run_status("lost")["phase"] == "Running"
    apply(world.plane, world.namespace, local_queue("ghost", "solo"))
    # Nothing lost: the same Job is admitted once the queue exists.
    wait_queued(world, "lost", "False", "Admitted")
    assert [a["jobName"] for a in attempts(world, "lost")] == ["lost-a1"]


def test_a_priority_outside_every_lane_is_refused(world: OperatorWorld, tmp_path: Path) -> None:
    # Hostile: a run claiming a priority above the API's range never reaches the operator.
    run = gpu_run("vip", "solo", priority=5000)
    result = world.plane.kubectl(
        "apply", "-n", world.namespace, "-f", "-", input=json.dumps(run), check=False
    )
    assert result.returncode != 0
    assert "priority" in result.stderr
    # Careless: lanes that leave priorities without a lane stop the operator at start, naming the gap.
    started = subprocess.run(
        [
            *JESUS,
            "operator",
            "--kueue",
            "--kueue-lanes",
            "batch=0:10",
            f"--kubeconfig={world.plane.kubeconfig}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=world.plane.env,
    )
    assert started.returncode != 0
    assert "priorities -1000..-1 fall in no lane" in started.stderr


def serving_condition(world: OperatorWorld, name: str) -> dict[str, Any] | None:
    adapter = get(world.plane, world.namespace, "modeladapter", name) or {}
    conditions = adapter.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "ServingAvailable"), None)


def describe_serving(world: OperatorWorld) -> str:
    shown = world.plane.kubectl(
        "get",
        "-n",
        world.namespace,
        "modeladapters,deployments,replicasets,pods,workloads,events",
        check=False,
    )
    return f"{shown.stdout}{shown.stderr}\n{world.describe()}"


def test_serving_pods_wait_gated_in_their_teams_queue_and_hold_its_gpu_quota(world: OperatorWorld) -> None:
    # llama.cpp on a GPU: its pod meets the test namespace's Pod Security "restricted" (vLLM's does not).
    model = llamacpp_adapter("local-llm", labels={"jesus.dev/team": "models"})
    model = set_field(model, "spec.serving.gpu", {"count": 1, "type": GPU_SHAPE.gpu_product})
    world.apply(set_field(model, "spec.serving.replicas", 2))

    # The models team's quota is one GPU: one replica is admitted, Kueue holds the other back.
    def settled() -> dict[str, Any] | None:
        found = serving_condition(world, "local-llm")
        if found is None or found["reason"] != "QueuedInKueue":
            return None
        # Pods and their Workloads appear one after another: wait for Kueue's verdict on both.
        message = found["message"]
        return (
            found if "1/2 serving pods wait" in message and "insufficient unused quota" in message else None
        )

    queued = wait_for(
        settled,
        timeout=90,
        what="ModelAdapter local-llm QueuedInKueue",
        describe=lambda: describe_serving(world),
    )
    assert queued["status"] == "False"
    assert "insufficient unused quota for nvidia.com/gpu" in queued["message"]
    assert queued["message"].startswith("Pending: ")

    name = serving_name("local-llm", ENGINE_LLAMACPP)
    deployment = get(world.plane, world.namespace, "deployment", name)
    assert deployment is not None
    assert deployment["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "models"
    assert deployment["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "interactive"

    def gated_and_placed() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        listed = get(world.plane, world.namespace, "pods", f"-l=app.kubernetes.io/instance={name}") or {}
        pods = listed.get("items", [])
        gated = [
            p for p in pods if ADMISSION_GATE in [g["name"] for g in p["spec"].get("schedulingGates", [])]
        ]
        placed = [p for p in pods if p["spec"].get("nodeName")]
        return (gated, placed) if (len(gated), len(placed)) == (1, 1) else None

    gated, placed = wait_for(
        gated_and_placed,
        timeout=60,
        what="one serving pod placed and one gated",
        describe=lambda: describe_serving(world),
    )
    assert placed[0]["spec"]["nodeName"] == GPU_NODE
    assert gated[0]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "models"
    assert "nodeName" not in gated[0]["spec"]

    # The admitted replica's GPU counts against the team's ClusterQueue.
    # (Kueue writes the ClusterQueue's usage after it admits the pod: wait for it, as a reader would.)
    def gpus_used() -> str | None:
        queue = kubectl_json(world.plane, "clusterqueue.kueue.x-k8s.io", "models")
        usage = queue.get("status", {}).get("flavorsUsage", [])
        gpus = [r for f in usage for r in f["resources"] if r["name"] == "nvidia.com/gpu"]
        return str(gpus[0]["total"]) if gpus and str(gpus[0]["total"]) != "0" else None

    assert wait_for(gpus_used, timeout=30, what="the GPU counted in the ClusterQueue") == "1"

    # Scaled to what the quota holds, the model is available.
    world.apply(set_field(model, "spec.serving.replicas", 1))
    wait_for(
        lambda: (c := serving_condition(world, "local-llm")) and c["status"] == "True" and c,
        timeout=90,
        what="ModelAdapter local-llm ServingAvailable",
        describe=lambda: describe_serving(world),
    )
    world.plane.kubectl("delete", "modeladapter", "-n", world.namespace, "local-llm", "--wait=false")
