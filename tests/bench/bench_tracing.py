"""What tracing costs the router: `jesus router` with spans exported to a local Jaeger versus off.

Run from the repository root:

    .venv/bin/python -m tests.bench.bench_tracing                 # default sizes
    .venv/bin/python -m tests.bench.bench_tracing --calls 2000 --json figures.json

Two real `jesus router` processes over one local OpenAI-compatible upstream (the fake provider of
tests/providers, in its own process, as in tests/bench/bench_router_peers.py): `off` with no OTEL_*
variable (tracing off, the default), `on` exporting over OTLP/HTTP to a real Jaeger (the all-in-one
program, built and cached like the control plane) with the SDK's default batch processor and sampler.
Every call carries a sampled `traceparent`, as a runner's does, so each is a call span exported (a
call answered at its first attempt has no attempt span). The two series take turns in short rounds,
so a change of the machine's load hits both alike. Figures: each router's CPU time per call (user +
system) at 1 and at 32 calls in flight, the difference in per cent, the latency P50 at 1 in flight,
and how many spans Jaeger received. `--split`: where a traced call's CPU goes, in one process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import openai
from tests.bench.bench_router_peers import (
    MESSAGES,
    Call,
    Figures,
    Series,
    _client,
    jesus_router,
    run_rounds,
    upstream_process,
)
from tests.builders.jaeger_server import JaegerServer

TARGET_PER_CENT = 5.0
# Longer than the batch processor's delay (5 s by default): the last spans are exported by then.
FLUSH_SECONDS = 6.0


def _traced_complete(client: openai.AsyncOpenAI, model: str, trace_ids: list[str]) -> Call:
    """A call with a sampled traceparent of a new trace, as a runner's turn sends."""

    async def call() -> object:
        trace_id = secrets.token_hex(16)
        trace_ids.append(trace_id)
        headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
        answer = await client.chat.completions.create(
            model=model, messages=MESSAGES, max_tokens=64, extra_headers=headers
        )
        assert answer.choices[0].message.content, answer
        return answer

    return call


def _spans_received(jaeger: JaegerServer, trace_ids: list[str], sample: int = 20) -> dict[str, int]:
    """Of the last `sample` traces sent to the traced router, how many Jaeger holds and their spans."""
    found, spans = 0, 0
    for trace_id in trace_ids[-sample:]:
        url = f"http://127.0.0.1:{jaeger.query_port}/api/traces/{trace_id}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                data = json.loads(response.read()).get("data") or []
        except OSError:
            continue
        if data:
            found += 1
            spans += len(data[0]["spans"])
    return {"traces_checked": min(sample, len(trace_ids)), "traces_found": found, "spans_found": spans}


async def bench(calls: int, *, both_off: bool = False) -> dict[str, Any]:
    """Both routers, interleaved; the figures. `both_off`: the `on` router traces nothing either (an
    A/A run: what the machine's noise alone makes of the difference)."""
    with (
        upstream_process() as upstream,
        tempfile.TemporaryDirectory(prefix="bench-tracing-") as folder,
        ExitStack() as stack,
    ):
        jaeger = JaegerServer(Path(folder))
        jaeger.start()
        stack.callback(jaeger.stop)
        proxies = {
            "off": stack.enter_context(jesus_router(upstream, Path(folder), "off", {})),
            "on": stack.enter_context(
                jesus_router(
                    upstream,
                    Path(folder),
                    "on",
                    {}
                    if both_off
                    else {
                        "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint,
                        "OTEL_SERVICE_NAME": "bench-router",
                    },
                )
            ),
        }
        trace_ids: dict[str, list[str]] = {name: [] for name in proxies}
        clients = {name: _client(p.base_url, p.api_key) for name, p in proxies.items()}

        def series() -> dict[str, Series]:
            return {
                name: Series(_traced_complete(clients[name], p.model, trace_ids[name]), p)
                for name, p in proxies.items()
            }

        await run_rounds(series(), per_series=200, concurrency=4, rounds=1)  # warm-up
        results: dict[str, Any] = {"calls": calls}
        for label, concurrency, rounds in (("1_in_flight", 1, 20), ("32_in_flight", 32, 10)):
            measured = series()
            # Each router's CPU over the whole period, the other's turns and the last batch's export
            # included: the batch processor exports in its own thread, whenever its batch is full or
            # its delay has passed, so a count over a router's own turns alone would miss some of it.
            before = {name: p.cpu_seconds() for name, p in proxies.items()}
            await run_rounds(measured, per_series=calls, concurrency=concurrency, rounds=rounds)
            await asyncio.sleep(FLUSH_SECONDS)
            cpu = {
                name: (proxies[name].cpu_seconds() - before[name]) / s.calls * 1000
                for name, s in measured.items()
            }
            results[f"cpu_ms_per_call_{label}"] = {name: round(value, 3) for name, value in cpu.items()}
            results[f"tracing_cpu_per_cent_{label}"] = round((cpu["on"] / cpu["off"] - 1) * 100, 1)
            results[f"p50_ms_{label}"] = {
                name: round(Figures.of(s.samples).p50_ms, 2) for name, s in measured.items()
            }
        results["jaeger"] = _spans_received(jaeger, trace_ids["on"])
        results["target_per_cent"] = TARGET_PER_CENT
        for client in clients.values():
            await client.close()
        return results


def split(spans_per_series: int = 20_000) -> dict[str, float]:
    """Where a traced call's CPU goes, in this process (microseconds per call answered at its first
    attempt, with the router's own span functions): making the span alone, with the batch processor (a
    null exporter), and exporting over OTLP/HTTP to a real Jaeger."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from tests.builders.chat import reply, request

    from jesus.router.records import CallRecord
    from jesus.router.tracing import AttemptTrace, end_call_span, record_attempt_spans, start_call_span
    from jesus.telemetry.tracing import PinnedIdGenerator, remote_parent

    class Null(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    def per_call(provider: TracerProvider) -> float:
        tracer = provider.get_tracer("bench")
        parent = remote_parent(secrets.token_hex(16), secrets.token_hex(8))
        asked, answered = request(), reply()
        record = CallRecord(call_id="c", run="bench", model="m", provider="openai", adapter="a")
        started = time.process_time()
        for _ in range(spans_per_series):
            call = start_call_span(asked, "bench", streamed=False, context=parent, tracer=tracer)
            attempt = AttemptTrace("a", "openai", "m", time.time_ns())
            attempt.finish(answered, None)
            record_attempt_spans(call, [attempt], tracer)  # one attempt: the call span only
            end_call_span(call, record, answered)
        provider.force_flush()
        provider.shutdown()
        return round((time.process_time() - started) / spans_per_series * 1e6, 1)

    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as folder:
        jaeger = JaegerServer(Path(folder))
        jaeger.start()
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            bare = TracerProvider(id_generator=PinnedIdGenerator())
            batched = TracerProvider(id_generator=PinnedIdGenerator())
            batched.add_span_processor(BatchSpanProcessor(Null(), max_queue_size=spans_per_series * 2))
            exported = TracerProvider(id_generator=PinnedIdGenerator())
            exporter = OTLPSpanExporter(endpoint=f"{jaeger.otlp_endpoint}/v1/traces")
            exported.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=spans_per_series * 2))
            return {
                "spans_only_us_per_call": per_call(bare),
                "batched_us_per_call": per_call(batched),
                "exported_us_per_call": per_call(exported),
            }
        finally:
            jaeger.stop()


def main() -> None:
    """Measure and print (and write with --json) the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000, help="calls of each series per concurrency")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--split", action="store_true", help="only where a traced call's CPU goes, in one process"
    )
    parser.add_argument(
        "--both-off", action="store_true", help="an A/A run: neither router traces (the noise floor)"
    )
    args = parser.parse_args()
    figures = split() if args.split else asyncio.run(bench(args.calls, both_off=args.both_off))
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
