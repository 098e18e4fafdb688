"""The router against the proxy users would pick instead, side by side in one run.

Run from the repository root:

    .venv/bin/python -m tests.bench.bench_router_peers                 # default sizes
    .venv/bin/python -m tests.bench.bench_router_peers --calls 2000 --json figures.json

One local OpenAI-compatible upstream (the fake provider of tests/providers, in its own process) is
called through the official openai SDK in every series:
  direct   the SDK calls the upstream;
  jesus    the SDK calls the real `jesus router` program (started as a subprocess from a spec file
           with an openai-compatible ModelAdapter on the upstream and a RoutePolicy; the run's token
           comes from POST /admin/v1/runs);
  floor    (--floor) the SDK calls the least SDK-based proxy (tests/bench/sdk_floor_proxy.py: uvicorn
           and one openai SDK call per request, as the router makes it, nothing else; it builds the
           router's Presidio log redactor, as a redacting proxy must), the floor under any router
           built this way;
  litellm  the SDK calls the LiteLLM proxy, installed by this benchmark in its own virtual environment
           under ~/.cache/jesus/bench/ (version LITELLM_VERSION), its model pointed at the upstream,
           without database, spend logs, callbacks or telemetry.
The series take turns in short rounds, so a change of the machine's load hits all of them alike.

Figures: non-streaming at 1 in flight (P50, P99, overhead over `direct`), the proxy process's CPU
time per call (user + system, its children included), calls per second at 32 in flight, streaming
with 5 ms between the upstream's events (whole stream and first token, overhead over `direct`), and
the router's resident memory at start and after the run (plus a long run with --long-calls).
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
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
from tests.builders.adapters import openai_adapter
from tests.builders.processes import JESUS, free_port, wait_for_port
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml
from tests.providers import Reply, serve_openai

REPO = Path(__file__).resolve().parents[2]
LITELLM_VERSION = "1.106.12"
CACHE = Path.home() / ".cache" / "jesus" / "bench"
ADMIN = "bench-admin-token"
LITELLM_KEY = "sk-bench-master"
MODEL = "bench-model"
MESSAGES: list[Any] = [{"role": "user", "content": "Say something short."}]
EVENT_GAP_SECONDS = 0.005
ANSWER = "benchmark answer"

Call = Callable[[], Awaitable[object]]


@dataclass
class Figures:
    """Latency percentiles of one series, in milliseconds (as tests/bench/bench_router.py has them; not
    imported from there, so this benchmark also runs against an older checkout of the router)."""

    calls: int
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, samples: list[float]) -> Figures:
        ordered = sorted(samples)
        p99_index = min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))
        return cls(len(ordered), statistics.median(ordered) * 1000, ordered[p99_index] * 1000)


# --- the upstream, in its own process -------------------------------------------------------------


class _Discard(list[Any]):
    def append(self, item: Any) -> None:
        return None


async def serve_upstream(port_file: Path, event_gap: float) -> None:
    """The upstream: answers every call at once; streams with `event_gap` seconds between events."""
    reply = Reply(text=ANSWER, input_tokens=12, output_tokens=4, event_gap_seconds=event_gap)
    async with serve_openai(default=reply) as fake:
        fake.requests = _Discard()  # keep memory flat over many calls
        port_file.write_text(fake.base_url)  # noqa: ASYNC240 - once, before serving
        await asyncio.Event().wait()


@contextmanager
def upstream_process() -> Iterator[str]:
    """The upstream in a child process; its base URL (ending in /v1)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    port_file = folder / "upstream-url"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.bench_router_peers", "serve-upstream", str(port_file)],
        cwd=REPO,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the upstream did not start")
            time.sleep(0.05)
        yield port_file.read_text()
    finally:
        _stop(process)
        port_file.unlink(missing_ok=True)
        folder.rmdir()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


# --- the proxies ------------------------------------------------------------------------------------


@dataclass
class Proxy:
    """A proxy process: where the SDK calls it, the key it takes, and the process to measure."""

    base_url: str
    api_key: str
    model: str
    process: subprocess.Popen[bytes]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process and its children so far."""
        root = psutil.Process(self.process.pid)
        total = 0.0
        for one in (root, *root.children(recursive=True)):
            try:
                times = one.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def rss_mib(self) -> float:
        """Resident memory of the process (without children), MiB."""
        return float(psutil.Process(self.process.pid).memory_info().rss) / 2**20


@contextmanager
def floor_proxy(upstream: str, folder: Path) -> Iterator[Proxy]:
    """The floor: the bare SDK proxy of tests/bench/sdk_floor_proxy.py on `upstream`."""
    port = free_port()
    log = (folder / "floor-proxy.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.sdk_floor_proxy", upstream, str(port), "--presidio"],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, process, what="the floor proxy")
        yield Proxy(f"http://127.0.0.1:{port}/v1", "sk-floor", MODEL, process)
    finally:
        _stop(process)
        log.close()


@contextmanager
def jesus_router(
    upstream: str, folder: Path, name: str = "jesus", otel: dict[str, str] | None = None
) -> Iterator[Proxy]:
    """`jesus router` over one openai-compatible adapter on `upstream`, with a run registered; `otel`
    are its OTEL_* variables (none, the default: tracing off)."""
    adapter = openai_adapter("upstream")
    adapter["spec"] |= {"provider": "openai-compatible", "endpoint": upstream, "model": MODEL}
    adapter["spec"].pop("limits", None)
    # An adapter that may receive personal data: its prompts go out as they are, as through LiteLLM (an
    # adapter that may not has each new message text redacted on the way out, spaCy among it).
    adapter["spec"]["dataClassifications"] = ["public", "internal", "confidential"]
    specs = folder / f"specs-{name}.yaml"
    specs.write_text(to_yaml(adapter, route_policy("route", ("upstream",))))
    port = free_port()
    log = (folder / f"{name}-router.log").open("wb")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    process = subprocess.Popen(
        [str(JESUS), "router", "--specs", str(specs), "--port", str(port), "--secrets-dir", str(folder)],
        env={**environ, "JESUS_ROUTER_ADMIN_TOKEN": ADMIN, "OPENAI_KEY_APIKEY": "sk-bench", **(otel or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, process, what=f"jesus router ({name})")
        url = f"http://127.0.0.1:{port}"
        answer = httpx.post(
            f"{url}/admin/v1/runs",
            json={"run": "bench", "routePolicy": "route"},
            headers={"authorization": f"Bearer {ADMIN}"},
            timeout=30,
        )
        answer.raise_for_status()
        yield Proxy(f"{url}/v1", answer.json()["token"], "route", process)
    finally:
        _stop(process)
        log.close()


def litellm_python() -> Path:
    """The LiteLLM proxy's own virtual environment (made and filled on first use); its python."""
    venv = CACHE / f"litellm-{LITELLM_VERSION}"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if not marker.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"], check=True
        )
        marker.write_text(LITELLM_VERSION)
    return python


def litellm_config(upstream: str) -> dict[str, Any]:
    """A LiteLLM proxy config: one model on `upstream`; no database, spend logs, callbacks, telemetry."""
    return {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {"model": f"openai/{MODEL}", "api_base": upstream, "api_key": "sk-bench"},
            }
        ],
        "litellm_settings": {
            "telemetry": False,
            "success_callback": [],
            "failure_callback": [],
            "callbacks": [],
            "set_verbose": False,
            "json_logs": False,
            "turn_off_message_logging": True,
        },
        "general_settings": {
            "master_key": LITELLM_KEY,
            "disable_spend_logs": True,
            "disable_error_logs": True,
            "disable_adding_master_key_hash_to_db": True,
        },
    }


@contextmanager
def litellm_proxy(upstream: str, folder: Path) -> Iterator[Proxy]:
    """The LiteLLM proxy (one worker) on `upstream`."""
    python = litellm_python()
    config = folder / "litellm.json"
    config.write_text(json.dumps(litellm_config(upstream)))  # JSON is YAML
    port = free_port()
    log = (folder / "litellm.log").open("wb")
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))
    }
    environment |= {
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price list at start-up
    }
    process = subprocess.Popen(
        [
            str(python.parent / "litellm"),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
            "--telemetry",
            "False",
        ],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=folder,
    )
    try:
        wait_for_port(port, process, what="the LiteLLM proxy", timeout=180)
        yield Proxy(f"http://127.0.0.1:{port}/v1", LITELLM_KEY, MODEL, process)
    finally:
        _stop(process)
        log.close()


# --- measurement ------------------------------------------------------------------------------------


@dataclass
class Series:
    """One series' samples and what its rounds cost: wall time, calls, the proxy's CPU seconds."""

    call: Call
    proxy: Proxy | None
    samples: list[float] = field(default_factory=list)
    first_tokens: list[float] = field(default_factory=list)
    seconds: float = 0.0
    calls: int = 0
    cpu_seconds: float = 0.0


async def run_rounds(series: dict[str, Series], *, per_series: int, concurrency: int, rounds: int) -> None:
    """`per_series` calls of each series, `concurrency` in flight, taking turns in `rounds` rounds."""
    per_round = max(1, per_series // rounds)
    for _ in range(rounds):
        for one in series.values():
            cpu_before = one.proxy.cpu_seconds() if one.proxy else 0.0
            started = time.perf_counter()
            await _round(one, per_round, min(concurrency, per_round))
            one.seconds += time.perf_counter() - started
            one.calls += per_round
            if one.proxy:
                one.cpu_seconds += one.proxy.cpu_seconds() - cpu_before


async def _round(one: Series, count: int, concurrency: int) -> None:
    remaining = iter(range(count))

    async def worker() -> None:
        for _ in remaining:
            started = time.perf_counter()
            first = await one.call()
            one.samples.append(time.perf_counter() - started)
            if isinstance(first, float):
                one.first_tokens.append(first - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _client(base_url: str, api_key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=base_url,
        api_key=api_key,
        max_retries=0,
        timeout=60,
        http_client=httpx.AsyncClient(limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)),
    )


def _complete(client: openai.AsyncOpenAI, model: str) -> Call:
    async def call() -> object:
        answer = await client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=64)
        assert answer.choices[0].message.content == ANSWER, answer
        return answer

    return call


def _stream(client: openai.AsyncOpenAI, model: str) -> Call:
    """A streamed call; answers the time its first text arrived (perf_counter)."""

    async def call() -> object:
        first: float | None = None
        text = []
        # Usage asked for in every series: the router always asks the upstream for it (to bill).
        stream = await client.chat.completions.create(
            model=model,
            messages=MESSAGES,
            max_tokens=64,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta is not None and choice.delta.content:
                    if first is None:
                        first = time.perf_counter()
                    text.append(choice.delta.content)
        assert "".join(text) == ANSWER, text
        assert first is not None
        return first

    return call


def _latency(series: dict[str, Series], samples: str = "samples") -> dict[str, Any]:
    figures = {name: Figures.of(getattr(one, samples)) for name, one in series.items()}
    base = figures["direct"]
    return {
        name: {
            "p50_ms": round(f.p50_ms, 2),
            "p99_ms": round(f.p99_ms, 2),
            "overhead_p50_ms": round(f.p50_ms - base.p50_ms, 2),
            "overhead_p99_ms": round(f.p99_ms - base.p99_ms, 2),
        }
        for name, f in figures.items()
    }


async def bench(calls: int, long_calls: int, only: tuple[str, ...]) -> dict[str, Any]:
    """Every series, interleaved; the figures."""
    with (
        upstream_process() as upstream,
        tempfile.TemporaryDirectory(prefix="bench-peers-") as folder,
        ExitStack() as stack,
    ):
        proxies = {"jesus": stack.enter_context(jesus_router(upstream, Path(folder)))}
        if "floor" in only:
            proxies["floor"] = stack.enter_context(floor_proxy(upstream, Path(folder)))
        if "litellm" in only:
            proxies["litellm"] = stack.enter_context(litellm_proxy(upstream, Path(folder)))
        return await _measure(upstream, proxies, calls, long_calls)


async def _measure(upstream: str, proxies: dict[str, Proxy], calls: int, long_calls: int) -> dict[str, Any]:
    clients = {"direct": _client(upstream, "sk-bench")} | {
        name: _client(proxy.base_url, proxy.api_key) for name, proxy in proxies.items()
    }
    models = {"direct": MODEL} | {name: proxy.model for name, proxy in proxies.items()}
    router = proxies["jesus"]
    results: dict[str, Any] = {"rss_mib": {"jesus_at_start": round(router.rss_mib(), 1)}}
    if "floor" in proxies:
        results["rss_mib"]["floor_at_start"] = round(proxies["floor"].rss_mib(), 1)

    def series(make: Callable[[openai.AsyncOpenAI, str], Call]) -> dict[str, Series]:
        return {name: Series(make(clients[name], models[name]), proxies.get(name)) for name in clients}

    warm = series(_complete)
    await run_rounds(warm, per_series=100, concurrency=4, rounds=1)
    results["rss_mib"]["jesus_after_warmup"] = round(router.rss_mib(), 1)

    one = series(_complete)
    await run_rounds(one, per_series=calls, concurrency=1, rounds=20)
    results["complete_1_in_flight"] = _latency(one)
    results["cpu_ms_per_call"] = {
        name: round(s.cpu_seconds / s.calls * 1000, 2) for name, s in one.items() if s.proxy
    }

    many = series(_complete)
    await run_rounds(many, per_series=max(calls, 32 * 20), concurrency=32, rounds=10)
    throughput = {name: s.calls / s.seconds for name, s in many.items()}
    results["complete_32_in_flight"] = {
        name: {
            "calls_per_s": round(value),
            "share_of_direct": round(value / throughput["direct"], 3),
            "p50_ms": round(Figures.of(many[name].samples).p50_ms, 2),
            "p99_ms": round(Figures.of(many[name].samples).p99_ms, 2),
        }
        for name, value in throughput.items()
    }
    results["cpu_ms_per_call_32_in_flight"] = {
        name: round(s.cpu_seconds / s.calls * 1000, 2) for name, s in many.items() if s.proxy
    }

    streams = series(_stream)
    await run_rounds(streams, per_series=max(100, calls // 4), concurrency=1, rounds=20)
    whole = _latency(streams)
    first = _latency(streams, "first_tokens")
    results["stream_1_in_flight"] = {
        name: {
            "whole_p50_ms": whole[name]["p50_ms"],
            "whole_overhead_p50_ms": whole[name]["overhead_p50_ms"],
            "first_token_p50_ms": first[name]["p50_ms"],
            "first_token_overhead_p50_ms": first[name]["overhead_p50_ms"],
            "per_stream_minus_first_token_ms": round(
                whole[name]["overhead_p50_ms"] - first[name]["overhead_p50_ms"], 2
            ),
        }
        for name in streams
    }
    results["rss_mib"]["jesus_after_series"] = round(router.rss_mib(), 1)
    if "floor" in proxies:
        results["rss_mib"]["floor_after_series"] = round(proxies["floor"].rss_mib(), 1)
    if long_calls:
        long_run = {"jesus": Series(_complete(clients["jesus"], models["jesus"]), router)}
        checkpoints = []
        for _ in range(5):
            await run_rounds(long_run, per_series=long_calls // 5, concurrency=32, rounds=1)
            checkpoints.append(round(router.rss_mib(), 1))
        results["rss_mib"]["jesus_long_run_calls"] = long_run["jesus"].calls
        results["rss_mib"]["jesus_long_run_checkpoints"] = checkpoints
    for client in clients.values():
        await client.close()
    return results


async def profile(output: Path, seconds: int, *, stream: bool) -> None:
    """py-spy's record of `jesus router` (collapsed stacks in `output`) while the SDK keeps 32 calls in
    flight through it for `seconds` seconds."""
    with (
        upstream_process() as upstream,
        tempfile.TemporaryDirectory(prefix="bench-peers-") as folder,
        jesus_router(upstream, Path(folder)) as router,
    ):
        client = _client(router.base_url, router.api_key)
        call = (_stream if stream else _complete)(client, router.model)
        await run_rounds({"jesus": Series(call, router)}, per_series=200, concurrency=32, rounds=1)
        spy = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measured load
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--format",
                "raw",
                "--output",
                str(output),
                "--duration",
                str(seconds),
                "--pid",
                str(router.process.pid),
            ]
        )
        one = Series(call, router)
        while spy.poll() is None:
            await run_rounds({"jesus": one}, per_series=320, concurrency=32, rounds=1)
        print(f"{one.calls / one.seconds:.0f} calls/s while profiled; collapsed stacks in {output}")
        await client.close()


def _print(figures: dict[str, Any]) -> None:
    for title, value in figures.items():
        print(f"\n{title}")
        if not isinstance(value, dict):
            print(f"  {value}")
            continue
        for name, numbers in value.items():
            shown = (
                ", ".join(f"{k}={v}" for k, v in numbers.items()) if isinstance(numbers, dict) else numbers
            )
            print(f"  {name}: {shown}")


def _above_floor(figures: dict[str, Any]) -> dict[str, Any]:
    """What the router costs over the bare SDK proxy (the floor), in ms."""
    one = figures["complete_1_in_flight"]
    if "floor" not in one:
        return {}
    cpu = figures["cpu_ms_per_call"]
    stream = figures["stream_1_in_flight"]

    def over(table: dict[str, Any], key: str) -> float:
        return round(float(table["jesus"][key]) - float(table["floor"][key]), 2)

    return {
        "overhead_p50_ms": over(one, "overhead_p50_ms"),
        "overhead_p99_ms": over(one, "overhead_p99_ms"),
        "cpu_ms_per_call": round(cpu["jesus"] - cpu["floor"], 2),
        "stream_minus_first_token_ms": over(stream, "per_stream_minus_first_token_ms"),
    }


def _ratios(figures: dict[str, Any]) -> dict[str, Any]:
    """The router against LiteLLM, as ratios (above 1: the router does better)."""
    if "litellm" not in figures["complete_1_in_flight"]:
        return {}
    one = figures["complete_1_in_flight"]
    many = figures["complete_32_in_flight"]
    cpu = figures["cpu_ms_per_call"]

    def ratio(a: float, b: float) -> float:
        return round(a / b, 1) if b > 0 else float("inf")

    return {
        "litellm_over_jesus": {
            "overhead_p50": ratio(one["litellm"]["overhead_p50_ms"], one["jesus"]["overhead_p50_ms"]),
            "overhead_p99": ratio(one["litellm"]["overhead_p99_ms"], one["jesus"]["overhead_p99_ms"]),
            "cpu_per_call": ratio(cpu["litellm"], cpu["jesus"]),
        },
        "jesus_over_litellm": {
            "calls_per_s_32": ratio(many["jesus"]["calls_per_s"], many["litellm"]["calls_per_s"]),
        },
    }


def main() -> None:
    """Run the benchmark and print the figures (and write them as JSON with --json)."""
    parser = argparse.ArgumentParser(description="The router against the LiteLLM proxy.")
    sub = parser.add_subparsers(dest="mode")
    upstream = sub.add_parser("serve-upstream")
    upstream.add_argument("port_file", type=Path)
    parser.add_argument("--calls", type=int, default=1000, help="measured calls per series (default 1000)")
    parser.add_argument(
        "--long-calls", type=int, default=0, help="then this many router calls at 32 in flight, for memory"
    )
    parser.add_argument("--no-litellm", action="store_true", help="leave the LiteLLM proxy out")
    parser.add_argument("--floor", action="store_true", help="add the bare SDK proxy (the floor) series")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--profile", type=Path, help="instead: py-spy's record of the router at 32 in flight")
    parser.add_argument("--profile-seconds", type=int, default=20)
    parser.add_argument("--profile-stream", action="store_true", help="profile streamed calls")
    args = parser.parse_args()
    if args.mode == "serve-upstream":
        asyncio.run(serve_upstream(args.port_file, EVENT_GAP_SECONDS))
        return
    if args.profile is not None:
        asyncio.run(profile(args.profile, args.profile_seconds, stream=args.profile_stream))
        return
    only: tuple[str, ...] = ("jesus",) if args.no_litellm else ("jesus", "litellm")
    only += ("floor",) if args.floor else ()
    load_before = os.getloadavg()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.calls} calls per series, "
        f"LiteLLM {LITELLM_VERSION}, load average {load_before[0]:.2f} {load_before[1]:.2f}"
    )
    figures = asyncio.run(bench(args.calls, args.long_calls, only))
    figures["ratios"] = _ratios(figures)
    figures["jesus_above_floor"] = _above_floor(figures)
    figures["machine"] = {
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "litellm_version": LITELLM_VERSION if "litellm" in only else None,
    }
    _print(figures)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
