"""Router benchmarks: overhead per call against calling the upstream directly, and failover time.

Run from the repository root:

    .venv/bin/python -m tests.bench.bench_router            # everything, default sizes
    .venv/bin/python -m tests.bench.bench_router --calls 2000 --json figures.json

Overhead: the same local OpenAI-compatible upstream (the fake provider of tests/providers, in its
own process) is called three ways, each through the official openai SDK:
  direct   the SDK calls the upstream;
  adapter  the openai-compatible adapter (over the same SDK) calls it, without the router: the
           difference between `library` and `adapter` is the router's own work;
  library  the in-process Router (chain, breaker, allowance, metering, metrics) calls it through the
           openai-compatible adapter, as `jesus run` does;
  service  the SDK calls `jesus router`'s HTTP service (its own process, uvicorn), which calls it, as
           a runner pod does. This path has one more HTTP hop than `direct`, and its figure says so.
Each at 1 and at 100 concurrent calls; P50 and P99 latency, and the difference to `direct`.

In-memory: the router over an adapter that answers at once without I/O, against calling that adapter
directly: the router's own cost per call (breaker, allowance, record, metrics) with nothing else in it.

Failover: a two-adapter chain whose primary fails by a 503, a refused connection, or a hang past the
attempt timeout. The figure is the time from the failure's detection (the primary attempt's end, as
the call record measures it) to the fallback's answer, and the call's total; "switching" is the
part of the call spent outside any attempt (the router's decision and bookkeeping).

The figures of one run come with the machine's load average: on a shared machine, compare series of
the same run (they are interleaved, so a change of load hits all of them), not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
from prometheus_client import CollectorRegistry
from tests.builders.processes import free_port, wait_for_port
from tests.providers import Fail, Hang, Reply, serve_openai, unused_base_url

from jesus.cli.router import KEEP_ALIVE_SECONDS, prepare_to_serve
from jesus.logic.allowance import CallPrice
from jesus.logic.routing import BreakerConfig, RetryPolicy, RoutePlan
from jesus.router import RoutedAdapter, Router, RouterMetrics, RunLedger
from jesus.router.registry import RunRegistry, RunRoute
from jesus.router.service import RouterService, build_app
from jesus_adapters import AdapterConfig, build_adapter
from jesus_adapters.types import ChatRequest, ChatResponse, Message, StreamDone, StreamEvent, Usage

REPO = Path(__file__).resolve().parents[2]
TOKEN = "bench-run-token"
PRICE = CallPrice(input_micros_per_mtok=1_000_000, output_micros_per_mtok=2_000_000)
MESSAGES = [{"role": "user", "content": "Say something short."}]


def _adapter(base_url: str) -> Any:
    config = AdapterConfig(provider="openai-compatible", model="bench-model", base_url=base_url, api_key="x")
    return build_adapter(config)


# --- child processes -------------------------------------------------------------------------


async def serve_upstream(port_file: Path) -> None:
    """The upstream: a fake OpenAI-compatible server that answers every call at once."""
    async with serve_openai(default=Reply(text="benchmark answer", input_tokens=12, output_tokens=4)) as fake:
        fake.requests = _Discard()  # keep memory flat over many calls
        port_file.write_text(fake.base_url)  # noqa: ASYNC240 - once, before serving
        await asyncio.Event().wait()


class _Discard(list[Any]):
    def append(self, item: Any) -> None:
        return None


def serve_router(port: int, upstream: str) -> None:
    """`jesus router`'s service over one adapter, with the bench run registered under TOKEN."""
    import uvicorn

    registry = CollectorRegistry()
    router = Router({"up": RoutedAdapter("up", _adapter(upstream), PRICE)}, metrics=RouterMetrics(registry))
    service = RouterService(router, RunRegistry(), registry)
    service.registry.register(
        RunRoute("bench", "default", RoutePlan(chain=("up",)), RunLedger("bench")), TOKEN
    )
    uvicorn.run(
        build_app(service),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        **prepare_to_serve(),  # as `jesus router` serves
    )


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.bench.bench_router", *args], cwd=REPO, start_new_session=True
    )


# --- measurement ------------------------------------------------------------------------------


@dataclass
class Figures:
    """Latency percentiles of one series, in milliseconds."""

    calls: int
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, samples: list[float]) -> Figures:
        ordered = sorted(samples)
        p99_index = min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))
        return cls(len(ordered), statistics.median(ordered) * 1000, ordered[p99_index] * 1000)


async def measure(
    call: Callable[[], Awaitable[object]], *, calls: int, concurrency: int, warmup: int
) -> Figures:
    """Latency of `calls` calls with `concurrency` in flight, after `warmup` unmeasured calls."""
    for _ in range(warmup):
        await call()
    samples: list[float] = []
    await _timed_round(call, calls, concurrency, samples)
    return Figures.of(samples)


async def measure_interleaved(
    calls: dict[str, Callable[[], Awaitable[object]]], *, per_series: int, concurrency: int, rounds: int = 20
) -> dict[str, Figures]:
    """Like `measure`, but the series take turns in short rounds, so that a machine whose load
    changes during the benchmark slows every series alike instead of whichever ran at the time."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        await measure(call, calls=50, concurrency=1, warmup=0)  # connections and caches warm
    per_round = max(1, per_series // rounds)
    for _ in range(rounds):
        for name, call in calls.items():
            await _timed_round(call, per_round, min(concurrency, per_round), samples[name])
    return {name: Figures.of(values) for name, values in samples.items()}


async def _timed_round(
    call: Callable[[], Awaitable[object]], count: int, concurrency: int, samples: list[float]
) -> None:
    """Makes `count` calls with `concurrency` in flight, adding each one's latency to `samples`."""
    remaining = iter(range(count))

    async def worker() -> None:
        for _ in remaining:
            started = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def bench_overhead(calls: int) -> dict[str, Any]:
    """Direct SDK vs the router library vs the router service, at 1 and 100 concurrent calls."""
    port_file = Path(tempfile.mkdtemp(prefix="bench-router-")) / "upstream-url"
    upstream_process = _spawn("serve-upstream", str(port_file))
    router_process: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if upstream_process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the upstream did not start")
            await asyncio.sleep(0.05)
        upstream = port_file.read_text()
        router_port = free_port()
        router_process = _spawn("serve-router", str(router_port), upstream)
        wait_for_port(router_port, router_process, what="the benchmark router")

        direct_client = openai.AsyncOpenAI(base_url=upstream, api_key="x", max_retries=0)
        service_client = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{router_port}/v1", api_key=TOKEN, max_retries=0
        )
        bare_adapter = _adapter(upstream)
        router = Router(
            {"up": RoutedAdapter("up", _adapter(upstream), PRICE)}, metrics=RouterMetrics(CollectorRegistry())
        )
        plan = RoutePlan(chain=("up",))
        ledger = RunLedger("bench")
        request = ChatRequest(messages=(Message("user", MESSAGES[0]["content"]),), max_tokens=64)

        async def direct() -> object:
            return await direct_client.chat.completions.create(
                model="bench-model", messages=MESSAGES, max_tokens=64
            )  # type: ignore[arg-type]

        async def adapter() -> object:
            return await bare_adapter.complete(request, timeout_seconds=60)

        async def library() -> object:
            return await router.complete(plan, request, ledger)

        async def service() -> object:
            return await service_client.chat.completions.create(
                model="route", messages=MESSAGES, max_tokens=64
            )  # type: ignore[arg-type]

        results: dict[str, Any] = {}
        for concurrency in (1, 100):
            series = await measure_interleaved(
                {"direct": direct, "adapter": adapter, "library": library, "service": service},
                per_series=calls,
                concurrency=concurrency,
                rounds=20 if concurrency == 1 else max(1, calls // concurrency),
            )
            base = series["direct"]
            results[f"concurrency_{concurrency}"] = {
                name: {
                    "calls": figures.calls,
                    "p50_ms": round(figures.p50_ms, 3),
                    "p99_ms": round(figures.p99_ms, 3),
                    "overhead_p50_ms": round(figures.p50_ms - base.p50_ms, 3),
                    "overhead_p99_ms": round(figures.p99_ms - base.p99_ms, 3),
                }
                for name, figures in series.items()
            }
            results[f"concurrency_{concurrency}"]["router_own_p50_ms"] = round(
                series["library"].p50_ms - series["adapter"].p50_ms, 3
            )
        await direct_client.close()
        await service_client.close()
        await bare_adapter.aclose()
        await _close(router)
        return results
    finally:
        for process in (router_process, upstream_process):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(10)
        port_file.unlink(missing_ok=True)
        port_file.parent.rmdir()


async def bench_failover(trials: int) -> dict[str, Any]:
    """Time from a primary's failure to the fallback's answer, per kind of failure."""
    request = ChatRequest(messages=(Message("user", "fail over, please"),), max_tokens=16)
    results: dict[str, Any] = {}
    async with (
        serve_openai(default=Fail(503, "overloaded")) as failing,
        serve_openai(default=Hang()) as hanging,
        serve_openai(default=Reply(text="fallback answer")) as fallback,
    ):
        primaries = {
            "http_503": failing.base_url,
            "connection_refused": unused_base_url(),
            "hang_past_timeout": hanging.base_url,
        }
        for case, primary_url in primaries.items():
            router = Router(
                {
                    "primary": RoutedAdapter("primary", _adapter(primary_url), PRICE),
                    "fallback": RoutedAdapter("fallback", _adapter(fallback.base_url), PRICE),
                },
                # Never open: every trial must detect the failure itself.
                breaker=BreakerConfig(failure_threshold=10**9),
            )
            plan = RoutePlan(
                chain=("primary", "fallback"), attempt_timeout_seconds=0.25, retry=RetryPolicy(max_retries=0)
            )
            after_detection: list[float] = []
            totals: list[float] = []
            detections: list[float] = []
            switching: list[float] = []
            for _ in range(trials):
                routed = await router.complete(plan, request, RunLedger("bench"))
                record = routed.record
                assert record.adapter == "fallback", record
                detected_ms = record.attempts[0].latency_ms
                detections.append(detected_ms / 1000)
                totals.append(record.latency_ms / 1000)
                after_detection.append((record.latency_ms - detected_ms) / 1000)
                switching.append((record.latency_ms - sum(a.latency_ms for a in record.attempts)) / 1000)
            await _close(router)
            results[case] = {
                "trials": trials,
                "detection_p50_ms": round(Figures.of(detections).p50_ms, 3),
                "failover_after_detection_p50_ms": round(Figures.of(after_detection).p50_ms, 3),
                "failover_after_detection_p99_ms": round(Figures.of(after_detection).p99_ms, 3),
                "router_switching_p50_ms": round(Figures.of(switching).p50_ms, 3),
                "router_switching_p99_ms": round(Figures.of(switching).p99_ms, 3),
                "total_p50_ms": round(Figures.of(totals).p50_ms, 3),
                "total_p99_ms": round(Figures.of(totals).p99_ms, 3),
            }
        # With the breaker open the primary is skipped without a request.
        router = Router(
            {
                "primary": RoutedAdapter("primary", _adapter(failing.base_url), PRICE),
                "fallback": RoutedAdapter("fallback", _adapter(fallback.base_url), PRICE),
            },
            breaker=BreakerConfig(failure_threshold=1, open_seconds=3600),
        )
        plan = RoutePlan(chain=("primary", "fallback"), retry=RetryPolicy(max_retries=0))
        await router.complete(plan, request, RunLedger("bench"))
        skipped = [
            (await router.complete(plan, request, RunLedger("bench"))).record.latency_ms / 1000
            for _ in range(trials)
        ]
        await _close(router)
        results["breaker_open"] = {
            "trials": trials,
            "total_p50_ms": round(Figures.of(skipped).p50_ms, 3),
            "total_p99_ms": round(Figures.of(skipped).p99_ms, 3),
        }
    return results


async def _close(router: Router) -> None:
    for routed in router.adapters.values():
        await routed.adapter.aclose()


class _InstantAdapter:
    """Answers at once, without I/O."""

    provider = "instant"
    model = "instant"

    def __init__(self) -> None:
        self.answer = ChatResponse("ok", (), "stop", Usage(12, 4), "instant", "instant")

    async def complete(self, request: ChatRequest, *, timeout_seconds: float) -> ChatResponse:
        return self.answer

    async def stream(self, request: ChatRequest, *, timeout_seconds: float) -> AsyncIterator[StreamEvent]:
        yield StreamDone(self.answer)

    async def aclose(self) -> None:
        return None


async def bench_in_memory(calls: int) -> dict[str, Any]:
    """The router's own cost: the router over an instant adapter vs the adapter alone."""
    adapter = _InstantAdapter()
    router = Router(
        {"instant": RoutedAdapter("instant", adapter, PRICE)}, metrics=RouterMetrics(CollectorRegistry())
    )
    plan = RoutePlan(chain=("instant",))
    ledger = RunLedger("bench")
    request = ChatRequest(messages=(Message("user", "hi"),), max_tokens=64)

    async def bare() -> object:
        return await adapter.complete(request, timeout_seconds=60)

    async def routed() -> object:
        return await router.complete(plan, request, ledger)

    bare_figures = await measure(bare, calls=calls, concurrency=1, warmup=100)
    routed_figures = await measure(routed, calls=calls, concurrency=1, warmup=100)
    return {
        "router_over_instant_adapter": {
            "calls": calls,
            "p50_us": round((routed_figures.p50_ms - bare_figures.p50_ms) * 1000, 1),
            "p99_us": round((routed_figures.p99_ms - bare_figures.p99_ms) * 1000, 1),
        }
    }


def _print(title: str, figures: dict[str, Any]) -> None:
    print(f"\n{title}")
    for key, value in figures.items():
        print(f"  {key}:")
        for name, numbers in value.items():
            shown = (
                ", ".join(f"{k}={v}" for k, v in numbers.items()) if isinstance(numbers, dict) else numbers
            )
            print(f"    {name}: {shown}")


def main() -> None:
    """Run the benchmarks and print the figures (and write them as JSON with --json)."""
    parser = argparse.ArgumentParser(description="Router overhead and failover benchmarks.")
    sub = parser.add_subparsers(dest="mode")
    upstream = sub.add_parser("serve-upstream")
    upstream.add_argument("port_file", type=Path)
    router = sub.add_parser("serve-router")
    router.add_argument("port", type=int)
    router.add_argument("upstream")
    parser.add_argument("--calls", type=int, default=1000, help="measured calls per series (default 1000)")
    parser.add_argument("--trials", type=int, default=50, help="failover trials per case (default 50)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.mode == "serve-upstream":
        asyncio.run(serve_upstream(args.port_file))
        return
    if args.mode == "serve-router":
        serve_router(args.port, args.upstream)
        return
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.calls} calls per series, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    overhead = asyncio.run(bench_overhead(args.calls))
    _print("Overhead per call (ms; overhead = minus direct SDK to the same upstream)", overhead)
    in_memory = asyncio.run(bench_in_memory(max(args.calls, 10_000)))
    _print(
        "Router's own cost per call (microseconds over calling the adapter directly)",
        {"in_memory": in_memory},
    )
    failover = asyncio.run(bench_failover(args.trials))
    _print("Failover (ms; attempt timeout 0.25 s, no retries)", {"cases": failover})
    if args.json is not None:
        figures = {
            "overhead": overhead,
            "in_memory": in_memory,
            "failover": failover,
            "cpus": os.cpu_count(),
            "load_average_after": os.getloadavg()[0],
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
