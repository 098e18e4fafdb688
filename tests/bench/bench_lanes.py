"""GPU scheduling with and without Kueue: runs of mixed lanes and GPU needs arriving over time on kwok's
GPU node (8 GPUs), with `jesus operator` (and `--kueue`) and the router on the local control plane.

Two teams submit runs on a fixed, seeded schedule: interactive (priority 800), batch (0) and background
(-500, with retries); 1 to 3 GPUs each; each runs for a set time once its pod is Running (the bench ends
the pod then, as the runner would). With Kueue each team has a ClusterQueue of 4 GPUs in one cohort
(borrowing and reclaim, lower lanes preempted); without it, Jobs start at once and pods wait at the
scheduler. Reported per mode: GPU utilisation while GPU work waits (mean of used / 8 over the samples
where some arrived GPU run is not running; and, as `utilisation_while_gpu_work_waits`, over those where
such a run's runner has not been ended yet, i.e. it waits for GPUs, not for its settlement), queue wait
per lane from submission to the first Running pod (P50, P95), preemptions, and the time until every run
ended.

Run: .venv/bin/python tests/bench/bench_lanes.py [--runs N] [--seconds T] [--seed S]
     [--run-seconds MIN MAX] [--mode kueue|default|both] [--profile] [--reclaim Any|LowerPriority]

--profile adds where the hand-overs go: for every attempt's Job, the median seconds from the bench
ending its pod to the Job's Complete condition and on to its Workload's Finished one (Kueue frees the
quota), and from quota reserved to the pod's creation, its scheduling and the bench seeing it Running;
and the bench's own sampling period. Server times have one-second resolution: read the medians as
such.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.builders.adapters import answering_adapter
from tests.builders.agentrun import hello_run
from tests.builders.budget import team_budget
from tests.builders.kueue import cluster_queue, local_queue, resource_flavor, runner_result_status
from tests.builders.routes import failover_route
from tests.cluster.harness import operator_world

from jesus.devcluster import ControlPlane
from jesus.logic.queueing import DEFAULT_LANES, build_priority_classes

GPUS = 8
LANES = {"interactive": (800, 0), "batch": (0, 1), "background": (-500, 3)}  # priority, retries
TEAMS = ("lane-a", "lane-b")


@dataclass
class Planned:
    name: str
    team: str
    lane: str
    gpus: int
    at: float
    seconds: float
    submitted: float | None = None
    first_running: float | None = None
    done: bool = False
    pods: dict[str, float] = field(default_factory=dict)  # pod name -> when first seen Running
    seen_running: dict[str, float] = field(default_factory=dict)  # pod name -> wall time first seen
    ended: dict[str, float] = field(default_factory=dict)  # pod name -> wall time the bench ended it


def schedule(runs: int, seconds: float, seed: int, durations: tuple[float, float] = (6, 14)) -> list[Planned]:
    rng = random.Random(seed)
    lanes = rng.choices(list(LANES), weights=(25, 45, 30), k=runs)
    return sorted(
        (
            Planned(
                name=f"r{i:03d}",
                team=TEAMS[i % 2],
                lane=lanes[i],
                gpus=rng.choice((1, 1, 2, 2, 3)),
                at=rng.uniform(0, seconds),
                seconds=rng.uniform(*durations),
            )
            for i in range(runs)
        ),
        key=lambda p: p.at,
    )


def manifest(planned: Planned) -> dict[str, Any]:
    priority, retries = LANES[planned.lane]
    run = hello_run(
        planned.name,
        team=planned.team,
        route_name="simple",
        max_cost="1.00",
        retries=retries,
        timeout_seconds=900,
    )
    run["spec"]["priority"] = priority
    run["spec"]["retryPolicy"]["backoffSeconds"] = 0
    run["spec"]["resources"] = {"requests": {"nvidia.com/gpu": planned.gpus}}
    return run


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _condition_time(obj: dict[str, Any], type_: str) -> float | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return _time(condition.get("lastTransitionTime"))
    return None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def profile(plane: ControlPlane, ns: str, plan: list[Planned]) -> dict[str, Any]:
    """Median seconds of each step of a hand-over, per attempt (see the module's docstring)."""

    def items(kind: str) -> list[dict[str, Any]]:
        listed = plane.kubectl("get", kind, "-n", ns, "-o", "json", check=False)
        return list(json.loads(listed.stdout)["items"]) if listed.returncode == 0 else []

    jobs = {j["metadata"]["name"]: j for j in items("jobs")}
    workloads = {
        o["name"]: w
        for w in items("workloads.kueue.x-k8s.io")
        for o in w["metadata"].get("ownerReferences", [])
    }
    pods = {p["metadata"]["labels"].get("job-name"): p for p in items("pods") if p["metadata"].get("labels")}
    ended = {pod: when for p in plan for pod, when in p.ended.items()}
    seen = {pod: when for p in plan for pod, when in p.seen_running.items()}
    steps: dict[str, list[float]] = {
        "pod ended -> Job Complete": [],
        "Job Complete -> Workload Finished": [],
        "Workload created -> quota reserved": [],
        "quota reserved -> pod created": [],
        "pod created -> scheduled": [],
        "scheduled -> bench saw Running": [],
    }
    for name, job in jobs.items():
        pod, workload = pods.get(name), workloads.get(name)
        pod_name = pod["metadata"]["name"] if pod else ""
        complete = _condition_time(job, "Complete")
        finished = _condition_time(workload, "Finished") if workload else None
        reserved = _condition_time(workload, "QuotaReserved") if workload else None
        created = _time(pod["metadata"].get("creationTimestamp")) if pod else None
        scheduled = _condition_time(pod, "PodScheduled") if pod else None
        pairs = (
            ("pod ended -> Job Complete", ended.get(pod_name), complete),
            ("Job Complete -> Workload Finished", complete, finished),
            (
                "Workload created -> quota reserved",
                _time((workload or {}).get("metadata", {}).get("creationTimestamp")),
                reserved,
            ),
            ("quota reserved -> pod created", reserved, created),
            ("pod created -> scheduled", created, scheduled),
            ("scheduled -> bench saw Running", scheduled, seen.get(pod_name)),
        )
        for step, begin, end in pairs:
            if begin is not None and end is not None:
                steps[step].append(end - begin)
    return {step: {"n": len(v), "median": _median(v)} for step, v in steps.items()}


def simulate(
    plane: ControlPlane, workdir: Path, mode: str, plan: list[Planned], limit: float, profiling: bool = False
) -> dict[str, Any]:
    objects = [
        answering_adapter("steady", replies=50),
        failover_route("simple", "steady"),
        *(team_budget(team, team, "1000.00") for team in TEAMS),
        *(local_queue(team, f"bench-{team}") for team in TEAMS),
    ]
    args = ("--kueue",) if mode == "kueue" else ()
    by_name = {p.name: p for p in plan}
    samples: list[float] = []
    gpu_samples: list[float] = []
    periods: list[float] = []
    with operator_world(plane, workdir, f"bench-{mode}", objects, operator_args=args, runtime=False) as world:
        ns = world.namespace
        start = time.monotonic()
        pending = list(plan)
        last = time.monotonic()
        while time.monotonic() - start < limit:
            periods.append(time.monotonic() - last)
            last = time.monotonic()
            now = time.monotonic() - start
            due = [p for p in pending if p.at <= now]
            if due:
                pending = [p for p in pending if p.at > now]
                world.apply(*(manifest(p) for p in due))
                for p in due:
                    p.submitted = time.monotonic() - start
            pods = json.loads(plane.kubectl("get", "pods", "-n", ns, "-o", "json").stdout)["items"]
            seen = time.monotonic() - start
            used = 0
            running_runs: set[str] = set()
            for pod in pods:
                run = pod["metadata"].get("labels", {}).get("jesus.dev/run", "")
                planned = by_name.get(run)
                if planned is None or pod["metadata"].get("deletionTimestamp"):
                    continue
                if pod["status"].get("phase") != "Running":
                    continue
                name = pod["metadata"]["name"]
                began = planned.pods.setdefault(name, seen)
                planned.seen_running.setdefault(name, time.time())
                if planned.first_running is None:
                    planned.first_running = seen
                if seen - began >= planned.seconds:
                    planned.ended.setdefault(name, time.time())
                    status = runner_result_status(pod, 10_000)
                    plane.kubectl(
                        "patch",
                        "pod",
                        "-n",
                        ns,
                        name,
                        "--subresource=status",
                        "--type=merge",
                        f"--patch={json.dumps(status)}",
                        check=False,
                    )
                    continue
                used += planned.gpus
                running_runs.add(run)
            phases = json.loads(plane.kubectl("get", "agentruns", "-n", ns, "-o", "json").stdout)["items"]
            for obj in phases:
                planned = by_name[obj["metadata"]["name"]]
                planned.done = (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            waiting = [
                p for p in plan if p.submitted is not None and not p.done and p.name not in running_runs
            ]
            if waiting:
                samples.append(min(used, GPUS) / GPUS)
            # A run whose runner the bench has ended is being settled, not waiting for GPUs.
            if [p for p in waiting if not p.ended]:
                gpu_samples.append(min(used, GPUS) / GPUS)
            if not pending and all(p.done for p in plan):
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - start
        runs = json.loads(plane.kubectl("get", "agentruns", "-n", ns, "-o", "json").stdout)["items"]
        handovers = profile(plane, ns, plan) if profiling else None
    preemptions = sum(
        1
        for obj in runs
        for attempt in (obj.get("status") or {}).get("attempts", [])
        if "preempted by Kueue" in attempt.get("message", "")
    )
    waits: dict[str, list[float]] = {lane: [] for lane in LANES}
    for p in plan:
        if p.submitted is not None and p.first_running is not None:
            waits[p.lane].append(p.first_running - p.submitted)
    return {
        "mode": mode,
        "runs": len(plan),
        "finished": sum(p.done for p in plan),
        "seconds": round(elapsed, 1),
        "utilisation_while_waiting": round(statistics.fmean(samples), 3) if samples else None,
        "samples": len(samples),
        "utilisation_while_gpu_work_waits": round(statistics.fmean(gpu_samples), 3) if gpu_samples else None,
        "gpu_samples": len(gpu_samples),
        "preemptions": preemptions,
        "wait": {
            lane: {"n": len(v), "p50": round(percentile(v, 0.5), 1), "p95": round(percentile(v, 0.95), 1)}
            for lane, v in waits.items()
        },
        "failed": [
            obj["metadata"]["name"] for obj in runs if (obj.get("status") or {}).get("phase") == "Failed"
        ],
        "sampling_period_s": _median(periods[1:]),
        **({"handovers": handovers} if handovers is not None else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=60.0, help="arrivals spread over this long")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--run-seconds", type=float, nargs=2, default=(6.0, 14.0), metavar=("MIN", "MAX"))
    parser.add_argument("--mode", choices=("kueue", "default", "both"), default="both")
    parser.add_argument("--limit", type=float, default=420.0, help="give up on a mode after this long")
    parser.add_argument("--profile", action="store_true", help="where the hand-overs' seconds go")
    parser.add_argument(
        "--reclaim",
        choices=("Any", "LowerPriority"),
        default="Any",
        help="the ClusterQueues' reclaimWithinCohort: which borrowed workloads a team may preempt",
    )
    args = parser.parse_args()
    modes = ("kueue", "default") if args.mode == "both" else (args.mode,)
    with tempfile.TemporaryDirectory() as tmp:
        plane = ControlPlane(Path(tmp) / "plane", die_with_parent=True, kueue=True)
        plane.start()
        try:
            cluster = [
                resource_flavor(),
                *build_priority_classes(DEFAULT_LANES),
                *(
                    cluster_queue(f"bench-{team}", gpus=GPUS // 2, cohort="bench", reclaim=args.reclaim)
                    for team in TEAMS
                ),
            ]
            plane.kubectl(
                "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": cluster})
            )
            for mode in modes:
                plan = schedule(args.runs, args.seconds, args.seed, tuple(args.run_seconds))
                result = simulate(plane, Path(tmp), mode, plan, args.limit, args.profile)
                print(json.dumps(result), flush=True)
        finally:
            plane.stop()


if __name__ == "__main__":
    main()
