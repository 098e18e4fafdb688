"""Tracing from the OTEL_* variables: off by default, what turns it on, pinned ids, a dead collector."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jesus.telemetry import forwarded_environment, start_pinned_span, tracing_config
from jesus.telemetry.tracing import PinnedIdGenerator

REPO = Path(__file__).resolve().parents[3]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}


@pytest.mark.parametrize(
    ("environ", "enabled", "why"),
    [
        ({}, False, "no OTLP endpoint"),
        (ENDPOINT, True, "to http://collector:4318"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True, "c:4318"),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True, "the default endpoint"),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "TRUE"}, False, "OTEL_SDK_DISABLED"),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False, "OTEL_TRACES_EXPORTER=none"),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "zipkin"}, False, "OTEL_TRACES_EXPORTER='zipkin' is not"),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, False, "OTEL_EXPORTER_OTLP_PROTOCOL='grpc'"),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, False, "TRACES_PROTOCOL='grpc'"),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, True, "collector"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "   "}, False, "no OTLP endpoint"),  # careless: blank
    ],
)
def test_what_turns_tracing_on(environ: dict[str, str], enabled: bool, why: str) -> None:
    config = tracing_config(environ, "jesus-router")
    assert config.enabled is enabled
    assert why in config.reason
    assert config.service_name == "jesus-router"


def test_the_service_name_variable_wins() -> None:
    assert tracing_config({"OTEL_SERVICE_NAME": "edge-router"}, "jesus-router").service_name == "edge-router"


def test_the_operator_hands_its_otel_settings_but_not_its_name_to_runners() -> None:
    environ = {
        **ENDPOINT,
        "OTEL_SERVICE_NAME": "jesus-operator",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "JESUS_ROUTER_ADMIN_TOKEN": "secret",
    }
    assert forwarded_environment(environ) == (
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
    )


def test_pinned_spans_take_the_ids_they_name_and_their_children_do_not() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=PinnedIdGenerator())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    root = start_pinned_span(tracer, "admit", trace_id=TRACE, span_id="00000000000000a1")
    root.end()
    child = start_pinned_span(
        tracer, "start attempt", trace_id=TRACE, span_id="00000000000000b2", parent_span_id="00000000000000a1"
    )
    with tracer.start_as_current_span("below", context=None) as below:
        pass
    child.end()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert format(spans["admit"].context.trace_id, "032x") == TRACE
    assert spans["admit"].context.span_id == 0xA1 and spans["admit"].parent is None
    assert spans["start attempt"].context.span_id == 0xB2
    assert spans["start attempt"].parent is not None and spans["start attempt"].parent.span_id == 0xA1
    assert format(spans["start attempt"].context.trace_id, "032x") == TRACE
    assert below.get_span_context().span_id not in (0xA1, 0xB2)  # ids are pinned once, not for good


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_collector_neither_blocks_spans_nor_the_exit() -> None:
    """Hostile environment: the endpoint refuses connections. Spans cost what they cost with a live one
    (the export happens in the batch processor's thread) and the bounded shutdown ends the process."""
    script = textwrap.dedent(
        """
        import time
        from opentelemetry import trace
        from jesus.telemetry import configure_tracing, shutdown_tracing
        provider = configure_tracing("jesus-test")
        assert provider is not None
        tracer = trace.get_tracer("t")
        started = time.monotonic()
        for _ in range(3000):
            with tracer.start_as_current_span("call"):
                pass
        print("spans", time.monotonic() - started)
        started = time.monotonic()
        shutdown_tracing(provider, 1000)
        print("shutdown", time.monotonic() - started)
        """
    )
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO / "adapters"), str(REPO)]),
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    figures = dict(line.split() for line in result.stdout.splitlines())
    assert float(figures["spans"]) < 5.0  # 3000 spans; a blocking export would take 3000 timeouts
    assert float(figures["shutdown"]) < 5.0  # bounded at 1 s (the SDK alone took 30 s and more)
