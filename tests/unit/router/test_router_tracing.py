"""OpenTelemetry spans of routed calls: GenAI attributes, fallbacks, errors, and the caller's trace."""

from __future__ import annotations

import json

import httpx2
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry
from tests.builders.chat import failure, reply, request
from tests.builders.doubles import FakeAdapter, Step

from jesus.logic.allowance import CallPrice
from jesus.logic.routing import RetryPolicy, RoutePlan
from jesus.redaction import RedactionConfig, Redactor
from jesus.router import RoutedAdapter, RouteError, Router, RouterMetrics, RunLedger
from jesus.router.registry import RunRegistry, RunRoute
from jesus.router.service import RouterService, build_app
from jesus.router.tracing import captures_content
from jesus_adapters.errors import ErrorKind

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def traced_router(primary: list[Step], fallback: list[Step]) -> tuple[Router, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    router = Router(
        {
            "primary": RoutedAdapter("primary", FakeAdapter(primary), CallPrice(1_000_000, 1_000_000)),
            "fallback": RoutedAdapter("fallback", FakeAdapter(fallback), CallPrice(1_000_000, 1_000_000)),
        },
        tracer=provider.get_tracer("test"),
    )
    return router, exporter


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    """The one call span (the attempts' spans are its children)."""
    spans = [s for s in exporter.get_finished_spans() if "jesus.run" in (s.attributes or {})]
    assert len(spans) == 1
    return spans[0]


def attempt_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    call = only_span(exporter)
    spans = exporter.get_finished_spans()
    children = [s for s in spans if s.parent and s.parent.span_id == call.context.span_id]
    return sorted(children, key=lambda s: s.start_time or 0)


PLAN = RoutePlan(chain=("primary", "fallback"), retry=RetryPolicy(max_retries=0))


async def test_a_call_span_carries_the_genai_attributes_and_fallbacks() -> None:
    router, exporter = traced_router(
        [failure(ErrorKind.OVERLOADED)], [reply(input_tokens=21, output_tokens=8)]
    )
    await router.complete(PLAN, request(max_tokens=64), RunLedger("run-a"))
    span = only_span(exporter)
    attributes = dict(span.attributes or {})
    assert span.name == "chat fake-model"
    assert span.kind is SpanKind.CLIENT
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "fake"
    assert attributes["gen_ai.request.max_tokens"] == 64
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (21, 8)
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["jesus.adapter"] == "fallback"
    assert attributes["jesus.fallbacks"] == ("primary->fallback",)
    assert attributes["jesus.run"] == "run-a"
    assert span.status.status_code is not StatusCode.ERROR


async def test_a_failed_call_span_is_an_error_with_its_kind() -> None:
    router, exporter = traced_router([failure(ErrorKind.INVALID_REQUEST)], [reply()])
    with pytest.raises(RouteError):
        await router.complete(PLAN, request(), RunLedger("run-a"))
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "InvalidRequest"


async def call_with_traceparent(
    router: Router, plan: RoutePlan, registry: CollectorRegistry, *, metrics_accept: str | None = None
) -> str:
    """One call through the service with the caller's traceparent; then GET /metrics (with
    `metrics_accept`) when asked, its text."""
    service = RouterService(router, RunRegistry(), registry)
    token = service.registry.register(RunRoute("run-a", "ns", plan, RunLedger("run-a")))
    transport = httpx2.ASGITransport(app=build_app(service))
    async with httpx2.AsyncClient(transport=transport, base_url="http://router") as client:
        answer = await client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {token}", "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
        )
        assert answer.status_code == 200
        if metrics_accept is None:
            return ""
        return (await client.get("/metrics", headers={"accept": metrics_accept})).text


async def test_the_service_continues_the_callers_trace() -> None:
    router, exporter = traced_router([reply()], [reply()])
    await call_with_traceparent(router, PLAN, CollectorRegistry())
    span = only_span(exporter)
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == "00f067aa0ba902b7"


async def test_an_abandoned_stream_still_ends_its_span() -> None:
    router, exporter = traced_router([reply("one two three")], [reply()])
    events = router.stream(PLAN, request(), RunLedger("run-a"))
    await anext(events)
    await events.aclose()
    span = only_span(exporter)
    assert dict(span.attributes or {})["jesus.streamed"] is True


async def test_each_attempt_is_a_child_span_with_its_adapter_and_outcome() -> None:
    router, exporter = traced_router(
        [failure(ErrorKind.OVERLOADED)], [reply(input_tokens=21, output_tokens=8)]
    )
    await router.complete(PLAN, request(max_tokens=64), RunLedger("run-a"))
    first, second = attempt_spans(exporter)
    assert len(exporter.get_finished_spans()) == 3
    for span in (first, second):
        attributes = dict(span.attributes or {})
        assert span.name == "chat fake-model"
        assert span.kind is SpanKind.CLIENT
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == attributes["gen_ai.system"] == "fake"
        assert attributes["gen_ai.request.model"] == "fake-model"
    failed, answered = dict(first.attributes or {}), dict(second.attributes or {})
    assert failed["jesus.adapter"] == "primary"
    assert failed["error.type"] == "Overloaded"
    assert first.status.status_code is StatusCode.ERROR
    assert "gen_ai.usage.input_tokens" not in failed
    assert answered["jesus.adapter"] == "fallback"
    assert (answered["gen_ai.usage.input_tokens"], answered["gen_ai.usage.output_tokens"]) == (21, 8)
    assert answered["gen_ai.response.finish_reasons"] == ("stop",)
    assert second.status.status_code is not StatusCode.ERROR


async def test_no_span_carries_the_prompt_or_the_answer() -> None:
    secret = "sk-live-4f9a8b7c6d5e4f3a2b1c"
    router, exporter = traced_router([reply(f"the key is {secret}")], [reply()])
    await router.complete(PLAN, request(f"remember {secret}"), RunLedger("run-a"))
    for span in exporter.get_finished_spans():
        values = [str(v) for v in (span.attributes or {}).values()]
        values += [str(v) for e in span.events for v in (e.attributes or {}).values()]
        assert not any(secret in v for v in values), span.name


async def test_a_malformed_traceparent_starts_a_new_trace_and_the_call_is_served() -> None:
    router, exporter = traced_router([reply()], [reply()])
    registry = CollectorRegistry()
    service = RouterService(router, RunRegistry(), registry)
    token = service.registry.register(RunRoute("run-a", "ns", PLAN, RunLedger("run-a")))
    transport = httpx2.ASGITransport(app=build_app(service))
    async with httpx2.AsyncClient(transport=transport, base_url="http://router") as client:
        for hostile in ("00-zz-00f067aa0ba902b7-01", f"00-{'0' * 32}-{'0' * 16}-01", "x" * 5000):
            answer = await client.post(
                "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": f"Bearer {token}", "traceparent": hostile},
            )
            assert answer.status_code == 200
    calls = [s for s in exporter.get_finished_spans() if "jesus.run" in (s.attributes or {})]
    assert len(calls) == 3
    assert all(s.parent is None for s in calls)


def content_router(content: Redactor | None, answer: str) -> tuple[Router, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    adapter = RoutedAdapter("primary", FakeAdapter([reply(answer)]), CallPrice(1_000_000, 1_000_000))
    router = Router({"primary": adapter}, tracer=provider.get_tracer("test"), trace_content=content)
    return router, exporter


SECRET = "sk-proj-" + "K" * 40


async def test_content_capture_puts_redacted_messages_on_the_call_span() -> None:
    redact = RedactionConfig().patterns_only().redactor()
    router, exporter = content_router(redact, f"stored under {SECRET}")
    plan = RoutePlan(chain=("primary",))
    await router.complete(plan, request(f"the key is {SECRET}, keep it"), RunLedger("run-a"))
    attributes = dict(only_span(exporter).attributes or {})
    (message,) = json.loads(str(attributes["gen_ai.input.messages"]))
    (answer,) = json.loads(str(attributes["gen_ai.output.messages"]))
    assert message["role"] == "user" and message["content"].startswith("the key is ")
    assert answer["role"] == "assistant" and answer["content"].startswith("stored under ")
    everything = json.dumps([dict(s.attributes or {}) for s in exporter.get_finished_spans()])
    assert SECRET not in everything


async def test_without_content_capture_no_message_is_on_any_span() -> None:
    router, exporter = content_router(None, "an answer")
    await router.complete(RoutePlan(chain=("primary",)), request("a question"), RunLedger("run-a"))
    for span in exporter.get_finished_spans():
        assert not {"gen_ai.input.messages", "gen_ai.output.messages"} & set(span.attributes or {})


@pytest.mark.parametrize(
    ("value", "on"), [("true", True), ("TRUE ", True), ("", False), ("1", False), ("yes", False)]
)
def test_content_capture_is_on_only_when_asked_for_with_true(value: str, on: bool) -> None:
    assert captures_content({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": value}) is on


async def test_a_call_answered_at_its_first_attempt_is_one_span() -> None:
    router, exporter = traced_router([reply()], [reply()])
    await router.complete(PLAN, request(), RunLedger("run-a"))
    assert len(exporter.get_finished_spans()) == 1
    assert attempt_spans(exporter) == []


async def test_a_retried_attempt_is_a_sibling_span_of_the_one_that_failed() -> None:
    router, exporter = traced_router([failure(ErrorKind.OVERLOADED), reply()], [reply()])
    retrying = RoutePlan(chain=("primary", "fallback"), retry=RetryPolicy(max_retries=1))
    await router.complete(retrying, request(), RunLedger("run-a"))
    first, second = attempt_spans(exporter)
    assert dict(first.attributes or {})["jesus.adapter"] == dict(second.attributes or {})["jesus.adapter"]
    assert first.status.status_code is StatusCode.ERROR
    assert second.status.status_code is not StatusCode.ERROR
    assert (first.end_time or 0) <= (second.start_time or 0)


OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


async def _metrics_after_a_traced_call(*, traced: bool, accept: str) -> str:
    """GET /metrics (with `accept`) of a router that served one call whose caller sent a traceparent."""
    registry = CollectorRegistry()
    router = Router(
        {"primary": RoutedAdapter("primary", FakeAdapter([reply()]), CallPrice())},
        metrics=RouterMetrics(registry),
        tracer=TracerProvider().get_tracer("test") if traced else None,
    )
    return await call_with_traceparent(router, RoutePlan(chain=("primary",)), registry, metrics_accept=accept)


@pytest.mark.parametrize("traced", [True, False])
async def test_the_call_latency_carries_the_runs_trace_as_an_exemplar_in_openmetrics(traced: bool) -> None:
    # With tracing off, the caller's traceparent still names the run's trace.
    text = await _metrics_after_a_traced_call(traced=traced, accept=OPENMETRICS)
    buckets = [
        line
        for line in text.splitlines()
        if line.startswith("jesus_router_call_latency_seconds_bucket") and " # " in line
    ]
    assert len(buckets) == 1
    assert f'# {{trace_id="{TRACE_ID}"}}' in buckets[0]
    assert text.rstrip().endswith("# EOF")


async def test_a_plain_scrape_gets_the_text_format_without_exemplars() -> None:
    text = await _metrics_after_a_traced_call(traced=True, accept="text/plain")
    assert "jesus_router_call_latency_seconds_bucket" in text
    assert TRACE_ID not in text


async def test_a_call_answered_at_once_carries_no_attribute_that_says_nothing() -> None:
    # Each attribute costs the router CPU on every call (docs/benchmarks.md, "Tracing overhead").
    router, exporter = traced_router([reply(input_tokens=3, output_tokens=2)], [reply()])
    await router.complete(PLAN, request(), RunLedger("run-a"))
    attributes = dict(only_span(exporter).attributes or {})
    assert not {"jesus.attempts", "jesus.fallbacks", "jesus.streamed"} & attributes.keys(), attributes
    assert attributes["gen_ai.response.model"] == attributes["gen_ai.request.model"] == "fake-model"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (3, 2)
    assert attempt_spans(exporter) == []
