"""Admission decision latency: the embedded engine (rego-cpp in process) and a real OPA server.

Prints P50/P99 (and mean, max) of wall-clock latency per engine over the inputs of the Rego tests,
cycled, and the CPU time a decision costs (the embedded engine's per decision; the OPA server's
process CPU over the run, per request), which a busy machine does not inflate. Run:

    .venv/bin/python tests/bench/bench_policy.py [--iterations 3000] [--warmup 200]

The OPA server is the pinned binary (built into the cache if needed), on 127.0.0.1, asked over HTTP
through the same client the operator uses, one request at a time. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.builders.rego import POLICIES, rego_cases

from jesus.devcluster.toolchain import ensure_tool
from jesus.policy import EmbeddedEngine, OpaServerEngine
from jesus.policy.opa_process import OpaServerProcess


def rego_test_inputs(opa: Path) -> list[dict[str, Any]]:
    """The inputs the Rego tests use: admitted runs, denials for every rule, failures of each kind."""
    cases = rego_cases(opa)
    return [cases[name] for name in sorted(cases)]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def summarise(name: str, seconds: list[float]) -> str:
    values = sorted(s * 1000 for s in seconds)
    return (
        f"{name:<12} n={len(values):>6}  p50={percentile(values, 0.50):7.3f} ms  "
        f"p99={percentile(values, 0.99):7.3f} ms  mean={statistics.fmean(values):7.3f} ms  "
        f"max={values[-1]:7.3f} ms"
    )


async def measure(
    decide: Callable[[dict[str, Any]], Awaitable[Any]],
    inputs: list[dict[str, Any]],
    iterations: int,
    warmup: int,
    pause: float = 0.0,
) -> tuple[list[float], list[float]]:
    """Wall-clock latency and this thread's CPU time of each of `iterations` decisions (after `warmup`
    unmeasured ones), inputs cycled, `pause` seconds apart."""
    for i in range(warmup):
        await decide(inputs[i % len(inputs)])
    wall, cpu = [], []
    for i in range(iterations):
        document = inputs[i % len(inputs)]
        started, started_cpu = time.perf_counter(), time.thread_time()
        decision = await decide(document)
        wall.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - started_cpu)
        if decision.error is not None:
            raise SystemExit(f"no decision during the benchmark: {decision.error}")
        if pause:
            await asyncio.sleep(pause)
    return wall, cpu


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--pause-ms",
        type=float,
        default=2.0,
        help="pause between decisions: admission is sporadic, and a busy loop is what a loaded "
        "scheduler penalises most (0 for back-to-back decisions)",
    )
    args = parser.parse_args()

    opa = ensure_tool("opa")
    inputs = rego_test_inputs(opa)
    print(
        f"{len(inputs)} distinct inputs (the Rego test cases), {args.iterations} decisions per engine, "
        f"{args.pause_ms:g} ms apart"
    )
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    embedded = EmbeddedEngine.from_directory(POLICIES)
    pause = args.pause_ms / 1000
    embedded_wall, embedded_cpu = await measure(embedded.decide, inputs, args.iterations, args.warmup, pause)

    with OpaServerProcess(opa, POLICIES) as server:
        assert server.pid is not None
        async with OpaServerEngine(server.url, timeout_seconds=5.0) as remote:
            await measure(remote.decide, inputs, args.warmup, 0)
            server_cpu_before = process_cpu_seconds(server.pid)
            server_wall, client_cpu = await measure(remote.decide, inputs, args.iterations, 0, pause)
            server_cpu = (process_cpu_seconds(server.pid) - server_cpu_before) / args.iterations

    print("wall-clock latency per decision:")
    print(summarise("embedded", embedded_wall))
    print(summarise("opa-server", server_wall))
    print("CPU time per decision:")
    print(summarise("embedded", embedded_cpu))
    print(summarise("client", client_cpu) + "  (Python side of the HTTP call)")
    print(f"{'opa-server':<12} mean={server_cpu * 1000:7.3f} ms  (server process, all threads)")
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    asyncio.run(main())
