"""Load benchmark of the operator: many AgentRuns created at once, until each is admitted with its Job.

Run from the repository root (the control plane binaries are built and cached on first use):

    .venv/bin/python -m tests.bench.bench_operator                     # 1,000 runs
    .venv/bin/python -m tests.bench.bench_operator --runs 200 --hold 10000 --json figures.json

It starts its own control plane (kwok nodes), installs the CRDs, and in two namespaces measures:

  bare      the baseline: a bare client creates the same number of runner Jobs (built by
            jesus.logic.manifests.build_runner_job, so the same shape) with the same concurrency;
  operator  `jesus router` and `jesus operator` run as processes (no stand-in container runtime: runner
            pods simply stay Pending or Running on kwok nodes; admission and Job creation are what is
            measured); N AgentRuns are created at once with the same concurrency, and a watch records
            when each run's Job first appears. Admission latency = Job seen - create returned.
  hold      (--hold N) N more runs whose team has a budget too small for any of them: how long until
            every one is Waiting, that none gets a Job, that the operator stays up, its memory and CPU
            while it holds them, and the admission latency of a few fundable runs created meanwhile.

--replicas N (N > 1) starts N active operators sharing 4*N shards through Leases (docs/scale.md), waits
until they have split the shards, and reports memory, CPU and log counts per replica and summed; Jobs
are counted over the cluster. --replicas 1 (the default) is one operator without shards, as before.

Where the time goes: --trace runs the same operator command inside traced_operator(), which counts
and times every API request, router registration, policy decision and reconcile, and prints per-run
figures and a request table; --profile adds cProfile (slower); --client-pool N is an experiment that
gives the operator's API client N kept-alive connections. Past --timeout the figures are reported for
the runs admitted so far.

The bare baseline runs first, so the operator's runs meet a cluster that already holds its objects
(the ratio errs against the operator). Everything it starts is stopped at the end, on Ctrl-C too.
Logs stay in the work directory it prints, for profiling (the operator logs each Job and ledger write).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import math
import os
import pstats
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import kr8s
import kr8s.asyncio
import yaml  # type: ignore[import-untyped]
from tests.builders.adapters import answering_adapter
from tests.builders.agentrun import hello_run
from tests.builders.budget import team_budget
from tests.builders.jaeger_server import JaegerServer
from tests.builders.routes import failover_route
from tests.cluster.harness import ADMIN_TOKEN, JESUS, REPO, Process, apply, install_crds

from jesus.api.agentrun import AgentRun
from jesus.api.common import LABEL_RUN
from jesus.devcluster import ControlPlane, ensure_all
from jesus.devcluster.controlplane import free_port
from jesus.kube import JsonObject, KubeClient
from jesus.logic import manifests
from jesus.logic.shards import SHARD_PREFIX, shard_of

OPERATOR_NS = "bench-operator"
BARE_NS = "bench-bare"
BARE_RUNS_NS = "bench-bare-runs"
TEAM = "bench"
TINY_TEAM = "bench-tiny"
# With --replicas N > 1: the replicas' Leases live here; they share SHARDS_PER_REPLICA * N shards.
LEASE_NS = "bench-leases"
SHARDS_PER_REPLICA = 4
SPLIT_WAIT_SECONDS = 120
MAX_COST = Decimal("0.10")
# The bare Jobs carry a sealed token of a real one's size, so both sides create Jobs of the same shape.
SEALED_TOKEN = "g" * 1100
RUNNER_SELECTOR = f"{manifests.LABEL_COMPONENT}={manifests.COMPONENT_RUNNER}"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TRACED_OPERATOR = "from tests.bench.bench_operator import traced_operator; traced_operator()"
PROGRESS_SECONDS = 15
RUNNING_GRACE_SECONDS = 180
PROFILE_VARIABLE = "JESUS_BENCH_PROFILE"
POOL_VARIABLE = "JESUS_BENCH_CLIENT_POOL"
# Runner Jobs must outlive the measurement: none ends (and settles) while admissions are timed.
RUN_TIMEOUT_SECONDS = 3600
LEDGER_LINE = re.compile(r"Updated budget ledger .*?operations=(\d+)")


# --- figures --------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile `p` (0-100] of `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if math.isfinite(value) else "not reached"


def describe_latencies(values: list[float]) -> str:
    """Percentiles of `values`; an infinite value is one that never happened within the wait."""
    reached = [v for v in values if math.isfinite(v)]
    missing = len(values) - len(reached)
    return (
        f"P50 {_seconds(percentile(values, 50))}, P95 {_seconds(percentile(values, 95))}, "
        f"P99 {_seconds(percentile(values, 99))}, max {_seconds(max(values))}"
        + (f", mean {statistics.fmean(reached):.2f} s" if reached else "")
        + (f" ({missing} of {len(values)} not reached)" if missing else "")
    )


def latency_figures(values: list[float]) -> dict[str, float | None]:
    """Percentiles for the JSON figures; None where the value was never reached."""
    figures = {f"p{p}": percentile(values, p) for p in (50, 95, 99, 100)}
    return {key: round(value, 3) if math.isfinite(value) else None for key, value in figures.items()}


@dataclass(frozen=True)
class ProcessSample:
    """What /proc says about a process: peak and current resident memory, CPU time used so far."""

    peak_mib: float
    rss_mib: float
    cpu_seconds: float


def sample_process(pid: int) -> ProcessSample:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    # utime and stime are fields 14 and 15; the command name (field 2) may hold spaces, so split after it.
    stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    cpu = (int(stat[11]) + int(stat[12])) / CLOCK_TICKS
    return ProcessSample(
        peak_mib=int(fields["VmHWM"].split()[0]) / 1024,
        rss_mib=int(fields["VmRSS"].split()[0]) / 1024,
        cpu_seconds=cpu,
    )


class CpuMeter:
    """CPU seconds each watched process used between `start()` and `read()`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self._started = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        self._start = {name: sample_process(pid).cpu_seconds for name, pid in self.pids.items()}

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def read(self) -> tuple[float, dict[str, float]]:
        """Wall seconds since start, and CPU seconds per process."""
        wall = time.monotonic() - self._started
        used = {
            name: sample_process(pid).cpu_seconds - self._start[name]
            for name, pid in self.pids.items()
            if Path(f"/proc/{pid}").exists()
        }
        return wall, used


def api_cost_line(bare: dict[str, Any], apiserver_seconds: float, admitted: int, runs: int) -> str:
    """kube-apiserver CPU per admitted run, beside a bare Job's. The operator's window also holds the
    pods the Job controller makes for its Jobs meanwhile; the bare window ends before its pods come."""
    per_run = apiserver_seconds / max(admitted, 1) * 1000
    alone = bare["cpu_seconds"].get("kube-apiserver", 0.0) / bare["jobs"] * 1000
    return (
        f"kube-apiserver CPU per admitted run: {per_run:.1f} ms ({admitted} of {runs} admitted); "
        f"per bare Job: {alone:.1f} ms"
    )


def floor_line(bare: dict[str, Any], bare_runs: dict[str, Any]) -> str:
    """What an operator that cost nothing would still take: the run's own three writes (the user's
    create, the admitted status, the Job), made by the bare client one kind after the other, and that
    time's ratio to the bare Jobs alone; with the API server's CPU for them per run."""
    seconds = bare_runs["created_seconds"] + bare_runs["status_seconds"] + bare["seen_seconds"]
    runs = bare_runs["runs"]
    cpu = (
        bare_runs["create_cpu_seconds"].get("kube-apiserver", 0.0)
        + bare_runs["status_cpu_seconds"].get("kube-apiserver", 0.0)
        + bare["cpu_seconds"].get("kube-apiserver", 0.0)
    )
    return (
        f"floor (a run's own three writes, no operator): {seconds:.2f} s for {runs} runs, ratio to the bare "
        f"Jobs {seconds / bare['seen_seconds']:.2f}; kube-apiserver {cpu / runs * 1000:.1f} ms per run"
    )


def fold_replicas(used: dict[str, float], replicas: list[str]) -> dict[str, float]:
    """CPU per process with several replicas: their sum first under "operator" (the key of a replica
    alone, so figures stay comparable), then each replica, then the others. One replica: unchanged."""
    if len(replicas) == 1:
        return used
    total = sum(used.get(name, 0.0) for name in replicas)
    others = {name: seconds for name, seconds in used.items() if name not in replicas}
    return {"operator": total, **{name: used[name] for name in replicas if name in used}, **others}


def describe_cpu(wall: float, used: dict[str, float], replicas: int = 1) -> str:
    parts = ", ".join(
        f"{f'operators (sum of {replicas})' if name == 'operator' and replicas > 1 else name} {seconds:.1f} s"
        for name, seconds in used.items()
    )
    return f"CPU over {wall:.1f} s wall: {parts} (this machine has {os.cpu_count()} cores)"


@dataclass
class LogCursor:
    """Reads the operator's log from where the last read stopped: ledger writes, Jobs, errors."""

    path: Path
    offset: int = 0

    def skip_to_end(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def read(self) -> dict[str, int]:
        with self.path.open("rb") as log:
            log.seek(self.offset)
            text = log.read().decode(errors="replace")
            self.offset = log.tell()
        batches = [int(m.group(1)) for m in LEDGER_LINE.finditer(text)]
        lines = text.splitlines()
        return {
            "budget_status_writes": len(batches),
            "ledger_operations_written": sum(batches),
            "largest_batch": max(batches, default=0),
            "jobs_created_logged": sum("Created runner job" in line for line in lines),
            "warnings": sum('"level":"WARNING"' in line for line in lines),
            "errors": sum('"level":"ERROR"' in line for line in lines),
        }


def sum_counts(per_replica: list[dict[str, int]]) -> dict[str, int]:
    """The log counts of every replica together: sums, except the largest batch (the largest of any)."""
    total: dict[str, int] = {}
    for counts in per_replica:
        for key, value in counts.items():
            total[key] = (
                max(total.get(key, 0), value) if key == "largest_batch" else total.get(key, 0) + value
            )
    return total


# --- watching -------------------------------------------------------------------------------------


@dataclass
class Seen:
    """When the watch first saw each key reach what the predicate asks for (monotonic seconds)."""

    times: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def mark(self, key: str) -> None:
        if key not in self.times:
            self.times[key] = time.time()  # wall clock: compared with the traced operator's
            self.changed.set()

    async def wait_for(
        self, keys: set[str], *, limit: float, what: str, alive: Callable[[], None], required: bool = True
    ) -> bool:
        """Until every key is seen (True); `alive` raises when something we depend on died. Past `limit`,
        TimeoutError, or False when not `required`."""
        started = time.monotonic()
        deadline, next_report = started + limit, started + PROGRESS_SECONDS
        while not keys <= self.times.keys():
            alive()
            if time.monotonic() > next_report:
                have = len(keys & self.times.keys())
                print(
                    f"  ... {have} of {len(keys)} {what} after {time.monotonic() - started:.0f} s", flush=True
                )
                next_report += PROGRESS_SECONDS
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if not required:
                    return False
                missing = len(keys - self.times.keys())
                raise TimeoutError(f"timed out after {limit:.0f} s: {missing} of {len(keys)} {what}")
            self.changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 2.0))
        return True


async def watch(
    api: kr8s.asyncio.Api,
    *,
    base: str,
    version: str,
    plural: str,
    namespace: str,
    on_object: Callable[[JsonObject], None],
    label_selector: str | None = None,
) -> None:
    """List then watch, calling `on_object` for every object and change; resumes where it stopped.

    A raw watch over the API (one JSON event per line) rather than a client's object layer, so that the
    benchmark's own watching costs little next to what it measures.
    """
    params: dict[str, str] = {"labelSelector": label_selector} if label_selector else {}
    resource_version = ""
    while True:
        try:
            resource_version = await _watch_once(
                api, base, version, plural, namespace, params, resource_version, on_object
            )
        except (kr8s.ServerError, httpx.HTTPError) as exc:
            # The API server refuses a watch of a resource whose cache is still filling ("storage is
            # (re)initializing", just after the CRDs are installed) and may drop one under load: list again.
            print(f"  (the benchmark's watch of {plural} failed: {exc!r}; listing again)", flush=True)
            resource_version = ""
            await asyncio.sleep(1)


async def _watch_once(
    api: kr8s.asyncio.Api,
    base: str,
    version: str,
    plural: str,
    namespace: str,
    params: dict[str, str],
    resource_version: str,
    on_object: Callable[[JsonObject], None],
) -> str:
    """One list (without `resource_version`) and one watch request; where the next one continues."""
    if not resource_version:
        async with api.call_api(
            "GET", version=version, base=base, namespace=namespace, url=plural, params=params
        ) as response:
            listing = response.json()
        for item in listing.get("items", []):
            on_object(item)
        resource_version = listing["metadata"]["resourceVersion"]
    query = {
        **params,
        "watch": "1",
        "resourceVersion": resource_version,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "240",
    }
    async with api.call_api(
        "GET", version=version, base=base, namespace=namespace, url=plural, params=query, stream=True
    ) as response:
        async for line in response.aiter_lines():
            if not line:
                continue
            event = json.loads(line)
            obj = event["object"]
            if event["type"] == "ERROR":  # 410 Gone: our resourceVersion is too old; list again
                return ""
            resource_version = obj["metadata"]["resourceVersion"]
            if event["type"] in ("ADDED", "MODIFIED"):
                on_object(obj)
    return resource_version


@dataclass
class OperatorWatch:
    """What the benchmark learns from watching one namespace: runner Jobs per run, runs per phase."""

    job_seen: Seen = field(default_factory=Seen)
    running_seen: Seen = field(default_factory=Seen)
    waiting_seen: Seen = field(default_factory=Seen)
    jobs_per_run: dict[str, set[str]] = field(default_factory=dict)

    def on_job(self, job: JsonObject) -> None:
        run = job["metadata"].get("labels", {}).get(LABEL_RUN, "")
        self.jobs_per_run.setdefault(run, set()).add(job["metadata"]["name"])
        self.job_seen.mark(run)

    def on_run(self, run: JsonObject) -> None:
        status = run.get("status") or {}
        name = run["metadata"]["name"]
        if status.get("phase") == "Running" and status.get("jobName"):
            self.running_seen.mark(name)
        if status.get("phase") == "Waiting":
            self.waiting_seen.mark(name)


# --- creating -------------------------------------------------------------------------------------


async def create_all(
    kube: KubeClient, objects: list[JsonObject], concurrency: int
) -> tuple[float, dict[str, float]]:
    """Create every object, at most `concurrency` requests in flight; the start and when each returned."""
    gate = asyncio.Semaphore(concurrency)
    returned: dict[str, float] = {}

    async def create(obj: JsonObject) -> None:
        async with gate:
            await kube.create(obj)
            returned[obj["metadata"]["name"]] = time.time()

    started = time.time()
    await asyncio.gather(*(create(o) for o in objects))
    return started, returned


def in_namespace(obj: JsonObject, namespace: str) -> JsonObject:
    return {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}


def bench_run(name: str, *, team: str = TEAM, namespace: str = OPERATOR_NS) -> JsonObject:
    """An AgentRun on the benchmark's route, holding MAX_COST, whose Job outlives the benchmark."""
    obj = in_namespace(hello_run(name, team=team, route_name="bench", max_cost=str(MAX_COST)), namespace)
    obj["spec"]["limits"]["timeoutSeconds"] = RUN_TIMEOUT_SECONDS
    return obj


def admitted_status(obj: JsonObject) -> JsonObject:
    """A status of the size and shape the operator writes when it admits a run (about 1.3 KB)."""
    now = "2026-01-01T00:00:00Z"
    name = obj["metadata"]["name"]

    def condition(type_: str, status: str, reason: str, text: str) -> JsonObject:
        return {
            "type": type_,
            "status": status,
            "lastTransitionTime": now,
            "reason": reason,
            "message": text,
        }

    return {
        "phase": "Running",
        "conditions": [
            condition("PolicyAllowed", "True", "PolicyAllowed", "allowed by policy"),
            condition("BudgetReserved", "True", "BudgetReserved", f"reserved 0.10 on {OPERATOR_NS}/{TEAM}"),
            condition("Admitted", "True", "Admitted", "dependencies, policy and budgets allow the run"),
            condition("Ready", "False", "Running", f"running attempt 1 in job {name}-a1"),
            condition("Running", "True", "JobCreated", f"runner job {name}-a1 created (attempt 1)"),
        ],
        "message": f"running attempt 1 in job {name}-a1",
        "policy": {"allowed": True, "evaluatedAt": now},
        "budgetReservations": [
            {"namespace": BARE_RUNS_NS, "budget": TEAM, "amountMicros": 100000, "settled": False}
        ],
        "jobName": f"{name}-a1",
        "attempts": [{"number": 1, "jobName": f"{name}-a1", "outcome": "Running", "startTime": now}],
        "traceId": "0" * 32,
        "specDigest": "sha256:" + "0" * 64,
        "startTime": now,
    }


def bare_runner_jobs(count: int, namespace: str) -> list[JsonObject]:
    """Runner Jobs as the operator builds them, for fake runs (names and UIDs made up)."""
    settings = manifests.RunnerSettings()
    jobs = []
    for index in range(count):
        obj = bench_run(f"bare-{index:05d}", namespace=namespace)
        obj["metadata"]["uid"] = f"00000000-0000-4000-8000-{index:012d}"
        run = AgentRun.model_validate(obj)
        jobs.append(
            manifests.build_runner_job(
                run,
                obj,
                1,
                settings,
                traceparent=f"00-{index:032x}-{index + 1:016x}-01",
                sealed_token=SEALED_TOKEN,
            )
        )
    return jobs


# --- tracing the operator (--trace) ---------------------------------------------------------------


@dataclass
class OperatorTrace:
    """Inside a traced operator: every API request, router registration, policy evaluation and
    reconcile counted and timed, with when each run's first reconcile began and its Job was created."""

    requests: dict[str, list[float]] = field(default_factory=dict)
    first_reconcile: dict[str, float] = field(default_factory=dict)
    job_created: dict[str, float] = field(default_factory=dict)

    def record(self, key: str, seconds: float) -> None:
        entry = self.requests.setdefault(key, [0, 0.0, 0.0])  # count, total seconds, longest
        entry[0] += 1
        entry[1] += seconds
        entry[2] = max(entry[2], seconds)

    def dump(self, path: Path) -> None:
        body = {
            "requests": self.requests,
            "first_reconcile": self.first_reconcile,
            "job_created": self.job_created,
        }
        path.with_suffix(".tmp").write_text(json.dumps(body))
        path.with_suffix(".tmp").replace(path)


def _kopf_request_key(method: str, url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    path = [p for p in parts.path.split("/") if p]
    if "namespaces" in path and len(path) > path.index("namespaces") + 2:
        path = path[path.index("namespaces") + 2 :]
    what = path[0] if len(path) == 1 else f"{path[0]}/{path[2]}" if len(path) > 2 else f"{path[0]}/<name>"
    watching = " (watch stream)" if "watch=" in parts.query else ""
    return f"kopf {method.upper()} {what}{watching}"


def _widen_client_pool(size: int) -> None:
    """An experiment, not a setting of the operator: kr8s's HTTP client keeps httpx's default of 20
    idle connections, so beyond 20 requests in flight every request opens (TLS) and closes its own.
    This gives the operator's client `size` kept-alive connections instead."""
    create_session = kr8s.asyncio.Api._create_session

    async def create_wide_session(self: kr8s.asyncio.Api) -> None:
        await create_session(self)
        narrow = self._session
        assert narrow is not None
        self._session = httpx.AsyncClient(
            base_url=narrow.base_url,
            headers=narrow.headers,
            verify=await self.auth.ssl_context(),  # type: ignore[no-untyped-call]
            timeout=self._timeout,
            follow_redirects=True,
            proxy=self.auth.proxy,
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
        )
        await narrow.aclose()

    kr8s.asyncio.Api._create_session = create_wide_session  # type: ignore[method-assign]


def traced_operator() -> None:
    """`jesus operator` with its requests traced; argv: the trace file, then the operator's arguments.

    The trace is written when the operator gets SIGUSR1 and when it exits. Only the benchmark's copy of
    the operator is wrapped; `jesus operator` itself is unchanged.
    """
    import kopf._cogs.clients.api as kopf_api

    from jesus.cli import main as jesus_main
    from jesus.controllers.agentrun import reconcile as agentrun
    from jesus.controllers.agentrun.reconcile import Reconciled
    from jesus.controllers.context import OperatorContext
    from jesus.controllers.router_admin import RouterAdminClient
    from jesus.policy.embedded import EmbeddedEngine

    out, argv = Path(sys.argv[1]), sys.argv[2:]
    trace = OperatorTrace()

    call, list_, register = KubeClient._call, KubeClient.list, RouterAdminClient.register
    evaluate, reconcile, kopf_request = EmbeddedEngine.evaluate, agentrun.reconcile_run, kopf_api.request

    async def traced_call(
        self: KubeClient, method: str, kind: str, namespace: str | None, url: str = "", **kw: Any
    ) -> JsonObject:
        key = f"{method} {kind}{' status' if url.endswith('/status') else ''}"
        started = time.perf_counter()
        try:
            result = await call(self, method, kind, namespace, url, **kw)
        except Exception as exc:
            trace.record(f"{key} -> {type(exc).__name__}", time.perf_counter() - started)
            raise
        trace.record(key, time.perf_counter() - started)
        if method == "POST" and kind == "Job":
            trace.job_created.setdefault(kw["json"]["metadata"]["labels"][LABEL_RUN], time.time())
        return result

    async def traced_list(
        self: KubeClient, kind: str, namespace: str | None = None, **kw: Any
    ) -> list[JsonObject]:
        started = time.perf_counter()
        result = await list_(self, kind, namespace, **kw)
        trace.record(f"LIST {kind}", time.perf_counter() - started)
        return result

    async def traced_register(self: RouterAdminClient, run: AgentRun) -> str:
        started = time.perf_counter()
        result = await register(self, run)
        trace.record("router register", time.perf_counter() - started)
        return result

    def traced_evaluate(self: EmbeddedEngine, policy_input: Any) -> Any:
        started = time.perf_counter()
        result = evaluate(self, policy_input)
        trace.record("policy evaluate (embedded)", time.perf_counter() - started)
        return result

    async def traced_reconcile(
        context: OperatorContext, namespace: str, name: str, body: JsonObject | None = None
    ) -> Reconciled:
        trace.first_reconcile.setdefault(name, time.time())
        started = time.perf_counter()
        try:
            return await reconcile(context, namespace, name, body)
        finally:
            trace.record("reconcile_run (whole, with lock wait)", time.perf_counter() - started)

    async def traced_kopf_request(method: str, url: str, **kw: Any) -> Any:
        started = time.perf_counter()
        try:
            return await kopf_request(method, url, **kw)
        finally:
            trace.record(_kopf_request_key(method, url), time.perf_counter() - started)

    KubeClient._call = traced_call  # type: ignore[method-assign]
    KubeClient.list = traced_list  # type: ignore[method-assign]
    RouterAdminClient.register = traced_register  # type: ignore[method-assign]
    EmbeddedEngine.evaluate = traced_evaluate  # type: ignore[method-assign]
    agentrun.reconcile_run = traced_reconcile
    kopf_api.request = traced_kopf_request
    pool = int(os.environ.get(POOL_VARIABLE, "0"))
    if pool:
        _widen_client_pool(pool)
    profile_path = os.environ.get(PROFILE_VARIABLE)
    profiler = cProfile.Profile() if profile_path else None

    def dump(signum: int = 0, frame: FrameType | None = None) -> None:
        if profiler is not None and profile_path:
            profiler.dump_stats(profile_path)  # from the start until now; dumping stops the profiler
            if signum:
                profiler.enable()
        trace.dump(out)

    signal.signal(signal.SIGUSR1, dump)
    try:
        if profiler is not None:
            profiler.enable()
        code = jesus_main(["operator", *argv])
    finally:
        dump()
    sys.exit(code)


def describe_profile(path: Path, lines: int = 25) -> str:
    """The operator's functions that took the most CPU of their own, from its cProfile dump."""
    text = io.StringIO()
    pstats.Stats(str(path), stream=text).sort_stats("tottime").print_stats(lines)
    return text.getvalue()


def read_trace(process: Process, path: Path) -> OperatorTrace:
    """Ask the traced operator for its figures so far."""
    path.unlink(missing_ok=True)
    os.kill(pid_of(process), signal.SIGUSR1)
    wait_until(path.exists, timeout=30, what="the operator's trace")
    body = json.loads(path.read_text())
    return OperatorTrace(body["requests"], body["first_reconcile"], body["job_created"])


def describe_trace(trace: OperatorTrace, before: OperatorTrace, runs: int) -> list[str]:
    """The requests made between two traces, per run, most time first."""
    rows = []
    for key, (count, total, longest) in trace.requests.items():
        base = before.requests.get(key, [0, 0.0, 0.0])
        count, total = count - base[0], total - base[1]
        if count:
            rows.append((total, key, count, longest))
    lines = [f"  {'request':<58} {'count':>7} {'per run':>8} {'mean ms':>8} {'total s':>8}"]
    for total, key, count, _ in sorted(rows, reverse=True):
        lines.append(
            f"  {key:<58} {count:>7.0f} {count / runs:>8.2f} {1000 * total / count:>8.1f} {total:>8.1f}"
        )
    return lines


# --- the processes --------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def router_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def check_alive(*processes: Process) -> Callable[[], None]:
    def alive() -> None:
        for process in processes:
            if process.popen is None or process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited\n{process.tail()}")

    return alive


def stop_all(processes: list[Process]) -> None:
    """SIGTERM to every one still running at once, then each waited for (SIGKILL past 10 s)."""
    running = [p for p in processes if p.popen is not None and p.popen.poll() is None]
    for process in running:
        with suppress(ProcessLookupError):
            os.killpg(pid_of(process), signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in running:
        assert process.popen is not None
        try:
            process.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()


def pid_of(process: Process) -> int:
    assert process.popen is not None
    return process.popen.pid


@dataclass(frozen=True)
class Replica:
    """One operator process: its name (its --identity when there are several), where its trace goes
    (--trace), and its metrics port (None for a replica alone, which serves none, as before)."""

    process: Process
    trace: Path
    metrics_port: int | None = None

    @property
    def name(self) -> str:
        return self.process.name


def sample_replicas(replicas: list[Replica]) -> dict[str, ProcessSample]:
    return {replica.name: sample_process(pid_of(replica.process)) for replica in replicas}


def summed_memory(samples: dict[str, ProcessSample]) -> tuple[float, float]:
    """Peak and current resident memory of the replicas together (the sum of each one's peak: an upper
    bound of the peak of the sum)."""
    return sum(s.peak_mib for s in samples.values()), sum(s.rss_mib for s in samples.values())


def describe_replica_memory(samples: dict[str, ProcessSample]) -> str:
    """Each replica's memory, for a line about several; empty for a replica alone."""
    if len(samples) == 1:
        return ""
    parts = "; ".join(
        f"{name} peak {s.peak_mib:.0f} MiB, RSS {s.rss_mib:.0f} MiB" for name, s in samples.items()
    )
    return f" (summed over {len(samples)} replicas: {parts})"


def read_traces(replicas: list[Replica]) -> OperatorTrace:
    """Every replica's trace so far, summed: counts and times added, the longest the longest of any, and
    a run's first reconcile and Job the earliest any replica saw."""
    merged = OperatorTrace()
    for replica in replicas:
        trace = read_trace(replica.process, replica.trace)
        for key, (count, total, longest) in trace.requests.items():
            entry = merged.requests.setdefault(key, [0, 0.0, 0.0])
            entry[0] += count
            entry[1] += total
            entry[2] = max(entry[2], longest)
        for mine, theirs in (
            (merged.first_reconcile, trace.first_reconcile),
            (merged.job_created, trace.job_created),
        ):
            for name, at in theirs.items():
                mine[name] = min(at, mine.get(name, at))
    return merged


async def shard_holders(kube: KubeClient, shards: int) -> dict[int, str]:
    """Who holds each shard now, from the shard Leases ("" for a shard nobody holds)."""
    holders = dict.fromkeys(range(shards), "")
    for lease in await kube.list("Lease", LEASE_NS):
        name = lease["metadata"]["name"]
        suffix = name.removeprefix(SHARD_PREFIX)
        if name.startswith(SHARD_PREFIX) and suffix.isdigit() and int(suffix) in holders:
            holders[int(suffix)] = str((lease.get("spec") or {}).get("holderIdentity") or "")
    return holders


def shard_split(holders: dict[int, str], identities: list[str]) -> dict[str, list[int]]:
    """The shards each replica holds, by replica, with "" for shards nobody holds (when any)."""
    split: dict[str, list[int]] = {identity: [] for identity in identities}
    for shard, holder in sorted(holders.items()):
        split.setdefault(holder, []).append(shard)
    return split


def describe_split(split: dict[str, list[int]]) -> str:
    return "; ".join(
        f"{name or 'nobody'} holds {len(shards)} ({', '.join(map(str, shards)) or '-'})"
        for name, shards in split.items()
    )


def runs_per_replica(names: set[str], holders: dict[int, str]) -> dict[str, int]:
    """How many of the runs `names` fall in each holder's shards (by the operator's own hash)."""
    counts: dict[str, int] = {}
    for name in names:
        holder = holders[shard_of(OPERATOR_NS, name, len(holders))]
        counts[holder] = counts.get(holder, 0) + 1
    return dict(sorted(counts.items()))


# --- the benchmark --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """What a measured phase works with: the client, the watched state, the liveness check, the
    operator processes, and the processes whose CPU it counts (a fresh meter per phase)."""

    kube: KubeClient
    state: OperatorWatch
    alive: Callable[[], None]
    replicas: list[Replica]
    cpu_pids: dict[str, int]

    def cpu(self) -> CpuMeter:
        return CpuMeter(self.cpu_pids)

    @property
    def names(self) -> list[str]:
        return [replica.name for replica in self.replicas]

    def logs(self) -> list[LogCursor]:
        """A cursor on each replica's log, from its end."""
        cursors = [LogCursor(replica.process.log) for replica in self.replicas]
        for cursor in cursors:
            cursor.skip_to_end()
        return cursors

    def fold(self, used: dict[str, float]) -> dict[str, float]:
        return fold_replicas(used, self.names)

    def describe_cpu(self, wall: float, used: dict[str, float]) -> str:
        return describe_cpu(wall, self.fold(used), len(self.replicas))


@dataclass
class Bench:
    plane: ControlPlane
    workdir: Path
    args: argparse.Namespace
    figures: dict[str, Any] = field(default_factory=dict)
    split: dict[str, list[int]] = field(default_factory=dict)

    def report(self, line: str) -> None:
        print(line, flush=True)

    async def run(self, router: Process, replicas: list[Replica]) -> None:
        api = await kr8s.asyncio.api(kubeconfig=str(self.plane.kubeconfig))
        kube = KubeClient(api)
        await self.bare(api, kube)
        await self.bare_runs(api, kube)
        processes_alive = check_alive(router, *(replica.process for replica in replicas))
        router.start()
        wait_until(lambda: router_ready(self.args.router_port), timeout=30, what="the router")
        for replica in replicas:
            replica.process.start()
        components = {r.name: r.pid for r in self.plane.running()}
        cpu_pids: dict[str, int] = {
            **{replica.name: pid_of(replica.process) for replica in replicas},
            "router": pid_of(router),
            "bench": os.getpid(),
            **{
                k: components[k]
                for k in ("kube-apiserver", "etcd", "kube-controller-manager")
                if k in components
            },
        }
        state = OperatorWatch()
        watches = [
            asyncio.create_task(
                watch(
                    api,
                    base="/apis/batch",
                    version="v1",
                    plural="jobs",
                    namespace=OPERATOR_NS,
                    label_selector=RUNNER_SELECTOR,
                    on_object=state.on_job,
                )
            ),
            asyncio.create_task(
                watch(
                    api,
                    base="/apis/jesus.dev",
                    version="v1alpha1",
                    plural="agentruns",
                    namespace=OPERATOR_NS,
                    on_object=state.on_run,
                )
            ),
        ]

        def alive() -> None:
            processes_alive()
            for task in watches:  # a watch that died would leave every wait to time out unexplained
                if task.done():
                    raise RuntimeError(f"the benchmark's watch ended: {task.exception()!r}")

        try:
            stage = Stage(kube, state, alive, replicas, cpu_pids)
            if len(replicas) > 1:
                await self.wait_for_split(stage)
            await self.warm_up(kube, state, alive)
            complete = await self.measured(stage)
            if self.args.hold and not complete:
                self.report("hold: skipped, the measured runs were not all admitted")
            elif self.args.hold:
                await self.hold(stage)
        finally:
            for task in watches:
                task.cancel()
            await asyncio.gather(*watches, return_exceptions=True)

    async def bare(self, api: kr8s.asyncio.Api, kube: KubeClient) -> None:
        """The baseline: the same number of runner Jobs, created by a bare client."""
        n = self.args.runs
        await kube.create(manifests.build_runner_service_account(BARE_NS, manifests.RunnerSettings()))
        jobs = bare_runner_jobs(n, BARE_NS)
        seen = Seen()
        components = {r.name: r.pid for r in self.plane.running()}
        cpu = CpuMeter({k: components[k] for k in ("kube-apiserver", "etcd") if k in components})
        cpu.start()
        watcher = asyncio.create_task(
            watch(
                api,
                base="/apis/batch",
                version="v1",
                plural="jobs",
                namespace=BARE_NS,
                label_selector=RUNNER_SELECTOR,
                on_object=lambda job: seen.mark(job["metadata"]["name"]),
            )
        )
        try:
            start, returned = await create_all(kube, jobs, self.args.concurrency)
            created = max(returned.values()) - start
            await seen.wait_for(set(returned), limit=self.args.timeout, what="bare Jobs", alive=lambda: None)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        total = max(seen.times.values()) - start
        wall, used = cpu.read()
        self.figures["bare"] = {
            "jobs": n,
            "created_seconds": round(created, 3),
            "seen_seconds": round(total, 3),
            "cpu_seconds": {k: round(v, 2) for k, v in used.items()},
        }
        self.report(
            f"bare client: {n} runner Jobs created in {created:.2f} s, "
            f"all seen by the watch in {total:.2f} s ({n / total:.0f} Jobs/s); {describe_cpu(wall, used)}"
        )
        # Let the Job controller make the baseline's pods before the operator's turn, so the two
        # measurements do not overlap; capped, since pods beyond the kwok nodes' room stay Pending.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pods = await kube.list("Pod", BARE_NS)
            if len(pods) >= n:
                break
            await asyncio.sleep(2)

    async def bare_runs(self, api: kr8s.asyncio.Api, kube: KubeClient) -> None:
        """What a run's own two writes cost the API server, before any operator runs: the same client
        creates N AgentRuns, then writes each a status like an admitted run's; then they are deleted."""
        n = self.args.runs
        components = {r.name: r.pid for r in self.plane.running()}
        pids: dict[str, int] = {k: components[k] for k in ("kube-apiserver", "etcd") if k in components}
        created_cpu = CpuMeter(pids)
        created_cpu.start()
        runs = [bench_run(f"bare-run-{i:05d}", namespace=BARE_RUNS_NS) for i in range(n)]
        await create_all(kube, runs, self.args.concurrency)
        created_wall, created_used = created_cpu.read()
        stored = await kube.list("AgentRun", BARE_RUNS_NS)
        written_cpu = CpuMeter(pids)
        written_cpu.start()
        gate = asyncio.Semaphore(self.args.concurrency)

        async def admit(obj: JsonObject) -> None:
            async with gate:
                await kube.replace_status({**obj, "status": admitted_status(obj)})

        await asyncio.gather(*(admit(obj) for obj in stored))
        written_wall, written_used = written_cpu.read()
        async with api.call_api(
            "DELETE", version="v1alpha1", base="/apis/jesus.dev", namespace=BARE_RUNS_NS, url="agentruns"
        ):
            pass
        wait_until_gone = time.monotonic() + 120
        for _ in range(120):  # the collection's deletion ends before the operator's turn
            if not await kube.list("AgentRun", BARE_RUNS_NS) or time.monotonic() > wait_until_gone:
                break
            await asyncio.sleep(1)
        create_ms = created_used.get("kube-apiserver", 0.0) / n * 1000
        status_ms = written_used.get("kube-apiserver", 0.0) / n * 1000
        self.figures["bare_runs"] = {
            "runs": n,
            "created_seconds": round(created_wall, 3),
            "create_cpu_seconds": {k: round(v, 2) for k, v in created_used.items()},
            "status_seconds": round(written_wall, 3),
            "status_cpu_seconds": {k: round(v, 2) for k, v in written_used.items()},
        }
        self.report(
            f"bare AgentRuns (no operator): {n} created in {created_wall:.2f} s, kube-apiserver "
            f"{create_ms:.1f} ms each; one admitted-like status written to each in {written_wall:.2f} s, "
            f"{status_ms:.1f} ms each"
        )
        self.report(floor_line(self.figures["bare"], self.figures["bare_runs"]))

    async def create(
        self, kube: KubeClient, cpu: CpuMeter, runs: list[JsonObject]
    ) -> tuple[float, dict[str, float], float]:
        """Start counting CPU and create `runs`: when creating began, when each create returned, and
        how long creating them all took."""
        cpu.start()
        start, returned = await create_all(kube, runs, self.args.concurrency)
        return start, returned, max(returned.values()) - start

    async def wait_for_split(self, stage: Stage) -> None:
        """Until every shard Lease has a holder among the replicas and each holds its fair share (4, as
        there are 4 shards per replica); past SPLIT_WAIT_SECONDS, on if each holds some, else an error."""
        identities, shards = stage.names, self.args.shards
        started = time.monotonic()
        while True:
            stage.alive()
            holders = await shard_holders(stage.kube, shards)
            split = shard_split(holders, identities)
            counts = [len(split[identity]) for identity in identities]
            all_held = set(holders.values()) <= set(identities)
            waited = time.monotonic() - started
            if all_held and min(counts) == max(counts):
                break
            if waited > SPLIT_WAIT_SECONDS:
                if all_held and min(counts) > 0:
                    self.report(f"shards: no even split after {waited:.0f} s, going on with an uneven one")
                    break
                raise TimeoutError(
                    f"timed out after {waited:.0f} s waiting for the replicas to hold every shard Lease in "
                    f"namespace {LEASE_NS}: {describe_split(split)}"
                )
            await asyncio.sleep(1)
        self.split = split
        self.report(
            f"shards: {len(identities)} replicas hold the {shards} shards after {waited:.1f} s: "
            f"{describe_split(split)}"
        )
        self.figures["shards"] = {"count": shards, "split_seconds": round(waited, 1), "start": split}

    async def warm_up(self, kube: KubeClient, state: OperatorWatch, alive: Callable[[], None]) -> None:
        """One run through the operator first, so start-up (imports, policy load) is not measured."""
        obj = bench_run("warm-up")
        await kube.create(obj)
        await state.job_seen.wait_for({"warm-up"}, limit=120, what="warm-up run's Job", alive=alive)

    async def measured(self, stage: Stage) -> bool:
        kube, state, alive, cpu = stage.kube, stage.state, stage.alive, stage.cpu()
        n = self.args.runs
        logs = stage.logs()
        before = read_traces(stage.replicas) if self.args.trace else None
        runs = [bench_run(f"load-{i:05d}") for i in range(n)]
        start, returned, created = await self.create(kube, cpu, runs)
        names = set(returned)
        # Past --timeout the figures are still reported, with the runs not admitted by then counted as
        # not reached, so an overloaded operator yields numbers rather than a traceback.
        complete = await state.job_seen.wait_for(
            names, limit=self.args.timeout, what="runs' Jobs", alive=alive, required=False
        )
        admitted = [name for name in names if name in state.job_seen.times]
        all_jobs = (max(state.job_seen.times[name] for name in admitted) if complete else time.time()) - start
        # Status follows the Job; how long it lags is worth knowing but is not the admission figure.
        if complete:
            await state.running_seen.wait_for(
                names, limit=RUNNING_GRACE_SECONDS, what="runs Running", alive=alive, required=False
            )
        wall, used = cpu.read()
        running = [name for name in names if name in state.running_seen.times]
        all_running = max((state.running_seen.times[name] for name in running), default=math.inf) - start
        latencies = [state.job_seen.times.get(name, math.inf) - returned[name] for name in names]
        to_running = [state.running_seen.times.get(name, math.inf) - returned[name] for name in names]
        samples = sample_replicas(stage.replicas)
        peak, rss = summed_memory(samples)
        per_replica = [log.read() for log in logs]
        counts = sum_counts(per_replica)
        duplicates = sum(len(state.jobs_per_run.get(name, ())) > 1 for name in names)
        bare = self.figures["bare"]["seen_seconds"]
        self.figures["operator"] = {
            "runs": n,
            "concurrency": self.args.concurrency,
            "created_seconds": round(created, 3),
            "all_admitted": complete,
            "runs_admitted": len(admitted),
            "all_jobs_seconds": round(all_jobs, 3),
            "running_seconds": round(all_running, 3) if running else None,
            "runs_seen_running": len(running),
            "admission_latency": latency_figures(latencies),
            "running_latency": latency_figures(to_running),
            "operator_peak_mib": round(peak, 1),
            "operator_rss_mib": round(rss, 1),
            "cpu_seconds": {k: round(v, 2) for k, v in stage.fold(used).items()},
            "ratio_to_bare": round(all_jobs / bare, 2),
            "runs_with_more_than_one_job": duplicates,
            **counts,
        }
        admitted_line = (
            f"all admitted with their Jobs in {all_jobs:.2f} s ({n / all_jobs:.1f} runs/s)"
            if complete
            else f"NOT all admitted: {len(admitted)} of {n} had their Jobs when the wait ended after "
            f"{all_jobs:.0f} s (--timeout)"
        )
        self.report(
            f"operator: {n} AgentRuns created in {created:.2f} s; {admitted_line}; "
            f"{len(running)} of {n} showed status Running, the last after {_seconds(all_running)}"
        )
        self.report(f"admission latency (Job seen - create returned): {describe_latencies(latencies)}")
        self.report(f"to status Running (status seen - create returned): {describe_latencies(to_running)}")
        self.report(
            f"operator memory: {'summed ' if len(samples) > 1 else ''}peak (VmHWM) {peak:.0f} MiB, "
            f"RSS at the end {rss:.0f} MiB{describe_replica_memory(samples)}"
        )
        self.report(stage.describe_cpu(wall, used))
        self.report(
            f"budget status writes: {counts['budget_status_writes']} "
            f"for {counts['ledger_operations_written']} ledger operations "
            f"(largest batch {counts['largest_batch']}); Jobs logged {counts['jobs_created_logged']}; "
            f"operator warnings {counts['warnings']}, errors {counts['errors']}; "
            f"runs with more than one Job: {duplicates}"
        )
        more = "" if complete else "more than "
        self.report(f"ratio operator/bare (all Jobs seen): {more}{all_jobs / bare:.2f}")
        self.report(api_cost_line(self.figures["bare"], used.get("kube-apiserver", 0.0), len(admitted), n))
        if len(stage.replicas) > 1:
            self.figures["operator"]["replicas"] = await self.per_replica(
                stage, "operator", samples, stage.fold(used), per_replica, names
            )
        if before is not None:
            self.explain(read_traces(stage.replicas), before, state, returned)
        return complete

    async def per_replica(
        self,
        stage: Stage,
        phase: str,
        samples: dict[str, ProcessSample],
        used: dict[str, float],
        counts: list[dict[str, int]],
        names: set[str],
    ) -> list[dict[str, Any]]:
        """Each replica's figures for a phase, and the lines saying them: the shards it holds now, how
        many of the phase's runs fall in them, its memory, CPU, Jobs logged, warnings and errors."""
        holders = await shard_holders(stage.kube, self.args.shards)
        split = shard_split(holders, stage.names)
        runs = runs_per_replica(names, holders)
        moved = "" if split == self.split else f" (changed since the start: {describe_split(self.split)})"
        self.report(f"{phase}: shards at the end: {describe_split(split)}{moved}")
        figures = []
        for replica, logged in zip(stage.names, counts, strict=True):
            sample = samples[replica]
            self.report(
                f"{phase}: {replica}: {runs.get(replica, 0)} of the {len(names)} runs in its shards now; "
                f"Jobs logged {logged['jobs_created_logged']}; peak {sample.peak_mib:.0f} MiB, "
                f"RSS {sample.rss_mib:.0f} MiB; CPU {used.get(replica, 0.0):.1f} s; "
                f"warnings {logged['warnings']}, errors {logged['errors']}"
            )
            figures.append(
                {
                    "identity": replica,
                    "shards": split.get(replica, []),
                    "runs_in_its_shards": runs.get(replica, 0),
                    "peak_mib": round(sample.peak_mib, 1),
                    "rss_mib": round(sample.rss_mib, 1),
                    "cpu_seconds": round(used.get(replica, 0.0), 2),
                    **logged,
                }
            )
        return figures

    def explain(
        self, trace: OperatorTrace, before: OperatorTrace, state: OperatorWatch, returned: dict[str, float]
    ) -> None:
        """Where each admission's time went: waiting for Kopf to start the reconcile, the reconcile up to
        the Job, the watch; and the requests the operator made per run."""
        names = list(returned)
        delivery = [trace.first_reconcile.get(n, math.inf) - returned[n] for n in names]
        admitting = [
            trace.job_created.get(n, math.inf) - trace.first_reconcile.get(n, math.inf)
            if n in trace.first_reconcile
            else math.inf
            for n in names
        ]
        watch_lag = [
            state.job_seen.times[n] - trace.job_created[n]
            for n in names
            if n in trace.job_created and n in state.job_seen.times
        ] or [math.inf]
        self.report(f"trace: create returned -> first reconcile began: {describe_latencies(delivery)}")
        self.report(f"trace: first reconcile began -> Job created: {describe_latencies(admitting)}")
        self.report(f"trace: Job created -> seen by the benchmark's watch: {describe_latencies(watch_lag)}")
        self.report("trace: requests during the measured run (all kinds, all handlers):")
        for line in describe_trace(trace, before, len(names)):
            self.report(line)
        self.figures["trace"] = {
            "delivery": latency_figures(delivery),
            "reconcile_to_job": latency_figures(admitting),
            "watch_lag": latency_figures(watch_lag),
            "requests": {
                key: [count - before.requests.get(key, [0, 0.0, 0.0])[0], round(total, 3)]
                for key, (count, total, _) in trace.requests.items()
            },
        }

    async def hold(self, stage: Stage) -> None:
        """Runs whose budget cannot fit them: all Waiting, none with a Job, the operator still up."""
        kube, state, alive, cpu = stage.kube, stage.state, stage.alive, stage.cpu()
        n = self.args.hold
        logs = stage.logs()
        held = [bench_run(f"held-{i:05d}", team=TINY_TEAM) for i in range(n)]
        start, returned, created = await self.create(kube, cpu, held)
        names = set(returned)
        all_held = await state.waiting_seen.wait_for(
            names, limit=self.args.timeout, what="held runs Waiting", alive=alive, required=False
        )
        all_waiting = (max(state.waiting_seen.times.values()) if all_held else time.time()) - start
        wall, used = cpu.read()
        waiting = [state.waiting_seen.times.get(name, math.inf) - returned[name] for name in names]
        after_waiting = sample_replicas(stage.replicas)
        waiting_peak, waiting_rss = summed_memory(after_waiting)
        summed = "summed " if len(after_waiting) > 1 else ""
        reached = sum(name in state.waiting_seen.times for name in names)
        self.report(
            f"hold: {n} AgentRuns over budget created in {created:.2f} s; "
            + (
                f"all Waiting in {all_waiting:.2f} s"
                if all_held
                else f"{reached} Waiting after {all_waiting:.0f} s"
            )
            + f"; to Waiting: {describe_latencies(waiting)}"
        )
        self.report(
            f"hold: operator memory {summed}peak {waiting_peak:.0f} MiB, "
            f"RSS {waiting_rss:.0f} MiB{describe_replica_memory(after_waiting)}; "
            + stage.describe_cpu(wall, used)
        )
        # Held runs are reconciled on every resync; new fundable runs must still be admitted promptly.
        cpu.start()
        probes = [bench_run(f"probe-{i:05d}") for i in range(self.args.probes)]
        _, probe_returned = await create_all(kube, probes, self.args.concurrency)
        await state.job_seen.wait_for(
            set(probe_returned), limit=self.args.timeout, what="probe runs' Jobs", alive=alive, required=False
        )
        probe_latencies = [state.job_seen.times.get(name, math.inf) - t for name, t in probe_returned.items()]
        remaining = self.args.observe - cpu.elapsed()
        if remaining > 0:
            await asyncio.sleep(remaining)
        alive()
        wall, used = cpu.read()
        end = sample_replicas(stage.replicas)
        end_peak, end_rss = summed_memory(end)
        per_replica = [log.read() for log in logs]
        counts = sum_counts(per_replica)
        held_with_jobs = sum(1 for name in names if state.jobs_per_run.get(name))
        still_waiting = sum(
            1
            for i in await kube.list("AgentRun", OPERATOR_NS)
            if i["metadata"]["name"] in names and (i.get("status") or {}).get("phase") == "Waiting"
        )
        self.figures["hold"] = {
            "runs": n,
            "created_seconds": round(created, 3),
            "all_waiting": all_held,
            "runs_waiting": reached,
            "all_waiting_seconds": round(all_waiting, 3),
            "waiting_latency": latency_figures(waiting),
            "held_runs_with_jobs": held_with_jobs,
            "held_runs_still_waiting": still_waiting,
            "probe_admission_latency": latency_figures(probe_latencies),
            "operator_peak_mib": round(end_peak, 1),
            "operator_rss_mib": round(end_rss, 1),
            "steady_cpu_seconds": {k: round(v, 1) for k, v in stage.fold(used).items()},
            "steady_wall_seconds": round(wall, 1),
            "operator_up": True,
            **counts,
        }
        self.report(
            f"hold: {self.args.probes} fundable runs created while {n} are held: admission latency "
            f"{describe_latencies(probe_latencies)}"
        )
        self.report(
            f"hold: after {wall:.0f} s holding, the operator is up; {still_waiting} of {n} still Waiting, "
            f"{held_with_jobs} got a Job; memory {'summed ' if len(end) > 1 else ''}peak {end_peak:.0f} MiB, "
            f"RSS {end_rss:.0f} MiB{describe_replica_memory(end)}; " + stage.describe_cpu(wall, used)
        )
        self.report(
            f"hold: budget status writes {counts['budget_status_writes']}, operator warnings "
            f"{counts['warnings']}, errors {counts['errors']}"
        )
        if len(stage.replicas) > 1:
            doubled = sum(len(jobs) > 1 for jobs in state.jobs_per_run.values())
            self.report(f"hold: runs with more than one Job (every run so far): {doubled}")
            self.figures["hold"]["runs_with_more_than_one_job"] = doubled
            self.figures["hold"]["replicas"] = await self.per_replica(
                stage, "hold", end, stage.fold(used), per_replica, names
            )


def setup_namespace(plane: ControlPlane, objects: list[JsonObject], replicas: int) -> None:
    for namespace in (OPERATOR_NS, BARE_NS, BARE_RUNS_NS, *([LEASE_NS] if replicas > 1 else [])):
        plane.kubectl("create", "namespace", namespace)
    apply(plane, OPERATOR_NS, *objects)


def world_objects(args: argparse.Namespace) -> list[JsonObject]:
    total_runs = args.runs + args.probes + 10  # the warm-up run, the probes, and room to spare
    return [
        answering_adapter("bench-model", replies=1),
        failover_route("bench", "bench-model"),
        team_budget(TEAM, TEAM, str(MAX_COST * total_runs)),
        team_budget(TINY_TEAM, TINY_TEAM, str(MAX_COST / 10)),
    ]


def processes(
    plane: ControlPlane,
    workdir: Path,
    args: argparse.Namespace,
    objects: list[JsonObject],
    otlp_endpoint: str | None = None,
) -> tuple[Process, list[Replica]]:
    specs = workdir / "specs"
    specs.mkdir(parents=True, exist_ok=True)
    (specs / "specs.yaml").write_text(yaml.safe_dump_all([in_namespace(o, OPERATOR_NS) for o in objects]))
    env = {**plane.env, "JESUS_ROUTER_ADMIN_TOKEN": ADMIN_TOKEN}
    operator_env = dict(env)
    if otlp_endpoint:  # --jaeger: both programs export their spans (ADR 23), as the chart sets them
        operator_env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint, "OTEL_SERVICE_NAME": "jesus-operator"}
        env = env | {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint, "OTEL_SERVICE_NAME": "jesus-router"}
    if args.client_pool:
        operator_env[POOL_VARIABLE] = str(args.client_pool)
    router = Process(
        "router",
        [*JESUS, "router", "--specs", str(specs), "--port", str(args.router_port)],
        env,
        workdir / "router.log",
    )
    return router, [operator_replica(workdir, args, operator_env, index) for index in range(args.replicas)]


def operator_replica(workdir: Path, args: argparse.Namespace, env: dict[str, str], index: int) -> Replica:
    """The operator process; with --replicas above 1, replica `index` of them: its own identity, log,
    trace, profile and metrics port, sharing the shards through Leases in LEASE_NS."""
    several = args.replicas > 1
    name, suffix = (f"bench-op-{index}", f"-{index}") if several else ("operator", "")
    trace = workdir / f"trace{suffix}.json"
    if args.profile:
        env = env | {PROFILE_VARIABLE: str(workdir / f"operator{suffix}.prof")}
    metrics_port = free_port() if several else None
    shards = (
        [
            "--shards",
            str(args.shards),
            "--identity",
            name,
            "--lease-namespace",
            LEASE_NS,
            "--metrics-port",
            str(metrics_port),
        ]
        if several
        else []
    )
    # With --trace, the same command runs inside traced_operator(), which counts and times its requests.
    command = [sys.executable, "-c", TRACED_OPERATOR, str(trace)] if args.trace else [*JESUS, "operator"]
    operator = Process(
        name,
        [
            *command,
            "--namespace",
            OPERATOR_NS,
            "--router-url",
            f"http://127.0.0.1:{args.router_port}",
            "--policies",
            str(REPO / "policies"),
            "--resync-seconds",
            str(args.resync_seconds),
            "--worker-limit",
            str(args.worker_limit),
            *shards,
        ],
        env,
        workdir / f"operator{suffix}.log",
    )
    return Replica(operator, trace, metrics_port)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="AgentRuns created at once (and bare Jobs)")
    parser.add_argument("--concurrency", type=int, default=50, help="create requests in flight")
    parser.add_argument("--hold", type=int, default=0, help="then this many runs held Waiting by a budget")
    parser.add_argument("--probes", type=int, default=20, help="fundable runs created while the hold lasts")
    parser.add_argument("--observe", type=float, default=60, help="seconds to watch the operator hold them")
    parser.add_argument("--resync-seconds", type=float, default=10.0, help="the operator's (its default)")
    parser.add_argument("--worker-limit", type=int, default=200, help="the operator's (its default)")
    parser.add_argument("--timeout", type=float, default=900, help="give up waiting after this many seconds")
    parser.add_argument("--workdir", type=Path, help="where logs go (default: a new temporary directory)")
    parser.add_argument(
        "--trace", action="store_true", help="count and time the operator's requests (where time goes)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="run the operator under cProfile (slower; implies --trace)"
    )
    parser.add_argument(
        "--client-pool",
        type=int,
        default=0,
        help="experiment: give the operator's API client this many kept-alive connections (implies --trace)",
    )
    parser.add_argument(
        "--jaeger",
        action="store_true",
        help="start a local Jaeger and trace the operator and router to it (what tracing costs them)",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help=f"active operator replicas; above 1 they share {SHARDS_PER_REPLICA} shards each through Leases",
    )
    parser.add_argument(
        "--no-audit",
        action="store_true",
        help="start the API server without its audit log (what the dev plane's audit policy costs)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.replicas < 1:
        parser.error(f"--replicas must be at least 1, not {args.replicas}")
    args.shards = SHARDS_PER_REPLICA * args.replicas
    args.trace = args.trace or args.profile or bool(args.client_pool)
    args.router_port = free_port()
    return args


def main() -> None:
    args = parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-operator-"))
    workdir.mkdir(parents=True, exist_ok=True)

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # unwinds through every cleanup below

    signal.signal(signal.SIGTERM, interrupted)
    ensure_all()
    print(
        f"work directory (logs): {workdir}; load average before: {os.getloadavg()[0]:.2f}; "
        f"audit log {'off' if args.no_audit else 'on'}",
        flush=True,
    )
    plane = ControlPlane(workdir / "plane", die_with_parent=True, audit=not args.no_audit)
    objects = world_objects(args)
    jaeger = JaegerServer(workdir) if args.jaeger else None
    router, replicas = processes(plane, workdir, args, objects, jaeger.otlp_endpoint if jaeger else None)
    bench = Bench(plane, workdir, args)
    with ExitStack() as stack:
        if jaeger is not None:
            jaeger.start()
            stack.callback(jaeger.stop)
        stack.callback(shutil.rmtree, workdir / "plane", ignore_errors=True)
        stack.callback(plane.stop)
        plane.start()
        stack.callback(router.stop)
        # Callbacks run last-in first-out: the operators stop first, told all at once, so that none
        # takes over the shards of another one stopping.
        stack.callback(stop_all, [replica.process for replica in replicas])
        install_crds(plane)
        setup_namespace(plane, objects, args.replicas)
        asyncio.run(bench.run(router, replicas))
        print(f"load average after: {os.getloadavg()[0]:.2f}", flush=True)
    for profile in sorted(workdir.glob("operator*.prof")) if args.profile else []:
        print(f"operator profile ({profile}), by own time:")
        print(describe_profile(profile))
    if args.json:
        args.json.write_text(json.dumps(bench.figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
