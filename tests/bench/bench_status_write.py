"""What one AgentRun status write costs the API server, by the status's shape: the part of issue 20's
"API-server CPU per admitted run" that no operator can avoid while it says in status that a run was
admitted.

Run: .venv/bin/python -m tests.bench.bench_status_write [--runs 500] [--no-audit]

It starts its own control plane, installs the CRDs and, for each shape in turn, creates `runs`
AgentRuns (50 requests in flight) and then writes each one status of that shape with a PUT to
/status, as the operator does. It prints kube-apiserver CPU per create and per status write:

- admitted: the status the operator writes at admission (`bench_operator.admitted_status`, 1.3 KB:
  five conditions, the policy verdict, the Budget reservation, the attempt);
- no conditions: the same without its conditions;
- phase only: `{"phase": "Running"}`, the least a status can say;
- admitted again: the first shape once more, to show the spread between two rounds of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import kr8s.asyncio
from tests.bench.bench_operator import CpuMeter, admitted_status, bench_run, create_all
from tests.cluster.harness import install_crds

from jesus.devcluster import ControlPlane, ensure_all
from jesus.kube import JsonObject, KubeClient

NAMESPACE = "status-bench"
IN_FLIGHT = 50

Shape = Callable[[JsonObject], JsonObject]

SHAPES: list[tuple[str, Shape]] = [
    ("admitted", admitted_status),
    ("no-conditions", lambda run: {k: v for k, v in admitted_status(run).items() if k != "conditions"}),
    ("phase-only", lambda run: {"phase": "Running"}),
    ("admitted-again", admitted_status),
]


async def measure(plane: ControlPlane, runs: int) -> None:
    api = await kr8s.asyncio.api(kubeconfig=str(plane.kubeconfig))
    kube = KubeClient(api)
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    pids = {r.name: r.pid for r in plane.running() if r.name == "kube-apiserver"}
    for label, shape in SHAPES:
        create_ms, status_ms = await measure_shape(kube, pids, runs, label, shape)
        print(f"{label:>15}: create {create_ms:.1f} ms, status write {status_ms:.1f} ms (API CPU each)")


async def measure_shape(
    kube: KubeClient, pids: dict[str, int], runs: int, label: str, shape: Shape
) -> tuple[float, float]:
    """kube-apiserver CPU per create of `runs` AgentRuns and per status write of `shape`, in ms."""

    async def apiserver_ms(work: Awaitable[object]) -> float:
        cpu = CpuMeter(pids)
        cpu.start()
        await work
        _, used = cpu.read()
        return used["kube-apiserver"] / runs * 1000

    made = [bench_run(f"{label}-{i:05d}", namespace=NAMESPACE) for i in range(runs)]
    create_ms = await apiserver_ms(create_all(kube, made, IN_FLIGHT))
    stored = [r for r in await kube.list("AgentRun", NAMESPACE) if r["metadata"]["name"].startswith(label)]
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def write(run: JsonObject) -> None:
        async with gate:
            await kube.replace_status({**run, "status": shape(run)})

    status_ms = await apiserver_ms(asyncio.gather(*(write(run) for run in stored)))
    return create_ms, status_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="AgentRuns per shape")
    parser.add_argument("--no-audit", action="store_true", help="the API server without its audit log")
    args = parser.parse_args()
    ensure_all()
    workdir = Path(tempfile.mkdtemp(prefix="bench-status-"))
    plane = ControlPlane(workdir / "plane", die_with_parent=True, audit=not args.no_audit)
    print(f"{args.runs} AgentRuns per shape; audit log {'off' if args.no_audit else 'on'}", flush=True)
    plane.start()
    try:
        install_crds(plane)
        asyncio.run(measure(plane, args.runs))
    finally:
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
