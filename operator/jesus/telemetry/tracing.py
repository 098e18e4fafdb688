"""The tracer provider of a program, from the standard OpenTelemetry environment variables.

Off unless an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`)
or `OTEL_TRACES_EXPORTER=otlp` asks for the default one; `OTEL_SDK_DISABLED=true` or
`OTEL_TRACES_EXPORTER=none` turn it off. The SDK reads the rest itself: the sampler
(`OTEL_TRACES_SAMPLER`, `_ARG`), resource attributes (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`),
the exporter's headers and timeout, the batch processor's queue. Spans are exported over OTLP/HTTP by a
batch processor in a thread of its own: a slow or unreachable collector costs a dropped batch and a
warning, never a call's time.

The operator knows a run's trace id before any span exists (it is derived from the run's UID, so a
reconcile that is run again stays in the same trace, see `jesus.logic.runs.trace_id`); its spans are
started with pinned ids (`start_pinned_span`) so that the runner's `TRACEPARENT` names a span that is
really exported.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags, Tracer
from opentelemetry.util.types import Attributes

log = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
SUPPORTED_PROTOCOL = "http/protobuf"
# What the operator hands on to runner Jobs, so a run's runner exports where the operator does.
FORWARDED_PREFIX = "OTEL_"
NOT_FORWARDED = frozenset({"OTEL_SERVICE_NAME"})  # the runner names itself
SHUTDOWN_TIMEOUT_MILLIS = 3000


@dataclass(frozen=True)
class TracingConfig:
    """Whether this program exports spans, as its name, and why (for its start-up log line)."""

    enabled: bool
    service_name: str
    reason: str


def _flag(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip().lower()


def tracing_config(environ: Mapping[str, str], default_service: str) -> TracingConfig:
    """What the `OTEL_*` variables of `environ` ask of program `default_service` (pure, for tests)."""
    service = environ.get("OTEL_SERVICE_NAME", "").strip() or default_service
    if _flag(environ, "OTEL_SDK_DISABLED") == "true":
        return TracingConfig(False, service, "OTEL_SDK_DISABLED=true")
    exporter = _flag(environ, "OTEL_TRACES_EXPORTER")
    if exporter == "none":
        return TracingConfig(False, service, "OTEL_TRACES_EXPORTER=none")
    if exporter not in ("", "otlp"):
        return TracingConfig(
            False, service, f"OTEL_TRACES_EXPORTER={exporter!r} is not supported (use otlp or none)"
        )
    protocol = _flag(environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or _flag(
        environ, "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    if protocol not in ("", SUPPORTED_PROTOCOL):
        variable = (
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
            if environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            else "OTEL_EXPORTER_OTLP_PROTOCOL"
        )
        return TracingConfig(
            False, service, f"{variable}={protocol!r} is not supported (use {SUPPORTED_PROTOCOL})"
        )
    endpoint = next((environ[v].strip() for v in ENDPOINT_VARIABLES if environ.get(v, "").strip()), "")
    if not endpoint and exporter != "otlp":
        return TracingConfig(False, service, "no OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT)")
    return TracingConfig(True, service, f"exporting over OTLP/HTTP to {endpoint or 'the default endpoint'}")


def configure_tracing(default_service: str) -> TracerProvider | None:
    """Install the process's tracer provider as the environment asks; None when tracing is off.

    Never raises for a bad setting: a program runs without traces rather than not at all, and says why.
    """
    config = tracing_config(os.environ, default_service)
    if not config.enabled:
        # Off by default says so only when asked (DEBUG); a setting that was not understood, loudly.
        level = logging.WARNING if "not supported" in config.reason else logging.DEBUG
        log.log(level, "Tracing is off service=%s reason=%s", config.service_name, config.reason)
        return None
    # Imported here: a program with tracing off does not load the exporter (protobuf, requests).
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    attributes: dict[str, str] = {}
    if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    ):
        attributes["service.name"] = default_service
    try:
        # No exit hook of the SDK's: `shutdown_tracing` bounds the wait, the SDK's would not.
        provider = TracerProvider(
            resource=Resource.create(attributes), id_generator=PinnedIdGenerator(), shutdown_on_exit=False
        )
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    except Exception as exc:  # a malformed OTEL_* value the SDK rejects: run without traces
        log.warning("Tracing is off service=%s reason=%s", config.service_name, exc)
        return None
    trace.set_tracer_provider(provider)
    log.info("Tracing is on service=%s %s", config.service_name, config.reason)
    return provider


def shutdown_tracing(provider: TracerProvider | None, timeout_millis: int = SHUTDOWN_TIMEOUT_MILLIS) -> None:
    """Export what is left, waiting at most `timeout_millis`: a collector that cannot be reached loses
    the last spans, not the program's exit. (The SDK's own flush ignores its timeout and retries every
    batch for the exporter's timeout; so it runs in a daemon thread that the exit does not wait for.)"""
    if provider is None:
        return
    finishing = threading.Thread(target=provider.shutdown, name="jesus-tracing-shutdown", daemon=True)
    finishing.start()
    # Polled, not join(timeout): a timed join waits in the kernel for an absolute deadline on the
    # monotonic clock, which a process whose clock is shifted (libfaketime, as the date guard runs the
    # tests) computes days away; a sleep is shifted alike.
    deadline = time.monotonic() + timeout_millis / 1000
    while finishing.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if finishing.is_alive():
        log.warning("Tracing did not finish exporting timeout_ms=%d; the last spans are lost", timeout_millis)


def forwarded_environment(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The `OTEL_*` variables a program hands on to the runner Jobs it creates (not the service name)."""
    return tuple(
        sorted(
            (name, value)
            for name, value in environ.items()
            if name.startswith(FORWARDED_PREFIX) and name not in NOT_FORWARDED
        )
    )


# --- spans with ids decided beforehand ---------------------------------------------------------------

# The ids the next span started in this context takes: [trace id or None, span id]; each is used once.
_pinned: ContextVar[list[int | None] | None] = ContextVar("jesus_pinned_ids", default=None)


class PinnedIdGenerator(RandomIdGenerator):
    """Random ids, except for a span started by `start_pinned_span`, which gets the ids it names."""

    def generate_trace_id(self) -> int:
        pinned = _pinned.get()
        if pinned is not None and pinned[0] is not None:
            value, pinned[0] = pinned[0], None
            return value
        return super().generate_trace_id()

    def generate_span_id(self) -> int:
        pinned = _pinned.get()
        if pinned is not None and pinned[1] is not None:
            value, pinned[1] = pinned[1], None
            return value
        return super().generate_span_id()


def remote_parent(trace_id: str, span_id: str) -> otel_context.Context:
    """A context whose current span is the (sampled) span `span_id` of trace `trace_id`, made elsewhere."""
    parent = SpanContext(int(trace_id, 16), int(span_id, 16), True, TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(parent))


def start_pinned_span(
    tracer: Tracer,
    name: str,
    *,
    trace_id: str,
    span_id: str,
    parent_span_id: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes = None,
    links: Sequence[trace.Link] = (),
    start_time: int | None = None,
) -> Span:
    """A started span with the given ids (hex), a root when `parent_span_id` is None.

    The ids hold when the process's provider is the one `configure_tracing` installed; with another
    provider the span gets that provider's ids, and with none it is a no-op.
    """
    context = remote_parent(trace_id, parent_span_id) if parent_span_id else otel_context.Context()
    token = _pinned.set([None if parent_span_id else int(trace_id, 16), int(span_id, 16)])
    try:
        return tracer.start_span(
            name, context=context, kind=kind, attributes=attributes, links=links, start_time=start_time
        )
    finally:
        _pinned.reset(token)
