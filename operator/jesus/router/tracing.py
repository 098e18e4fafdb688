"""OpenTelemetry spans of model calls, with the GenAI semantic conventions' attributes.

One span per routed call ("chat <model>", kind CLIENT), a child of whatever span is current (the
service extracts the runner's `traceparent`, so a run's trace goes from admission through every model
call), and under it, when the call took more than one attempt (a retry or a fallback), one span per
attempt sent to an adapter. Without a configured tracer provider the spans are no-ops and cost next to
nothing. No prompt or answer text is recorded unless the router is started with
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true, and then redacted with the router's full
redactor before it is set on the span.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from jesus.redaction import Redactor, redact_structure
from jesus.router.records import CallRecord
from jesus_adapters.types import ChatRequest, ChatResponse

default_tracer = trace.get_tracer("jesus.router")


CAPTURE_CONTENT_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


def captures_content(environ: Mapping[str, str]) -> bool:
    """Whether the operator of the router asked for prompts and answers on spans (the GenAI
    instrumentations' variable, `true`); off by default, and what is recorded is redacted first."""
    return environ.get(CAPTURE_CONTENT_VARIABLE, "").strip().lower() == "true"


def _messages(messages: list[dict[str, str]], redact: Redactor) -> str:
    """Messages as the GenAI conventions' JSON attribute, each text redacted as the structure it is."""
    return json.dumps(redact_structure(messages, redact), ensure_ascii=False)


def start_call_span(
    request: ChatRequest,
    run: str,
    *,
    streamed: bool,
    context: Context | None = None,
    tracer: Tracer | None = None,
    content: Redactor | None = None,
) -> Span:
    """A started span for one call (end it with `end_call_span`); with `content`, the request's
    messages, redacted by it, as `gen_ai.input.messages`."""
    span = (tracer or default_tracer).start_span(
        "chat",
        context=context,
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.max_tokens": request.max_tokens,
            "jesus.run": run,
        },
    )
    if streamed:  # each attribute costs the router CPU to encode and send: none that says nothing
        span.set_attribute("jesus.streamed", True)
    if content is not None and span.is_recording():
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        span.set_attribute("gen_ai.input.messages", _messages(messages, content))
    return span


def end_call_span(
    span: Span, record: CallRecord, response: ChatResponse | None, content: Redactor | None = None
) -> None:
    """Record the call's outcome on its span (with `content`, the answer redacted by it) and end it."""
    if not span.is_recording():  # tracing off, or not sampled: nothing to build
        span.end()
        return
    # One set_attributes call: each set_attribute takes the span's lock and checks the value again.
    # Only attributes that say something: a call answered at its first attempt has no attempt count
    # and no fallbacks (each attribute costs the router CPU to encode and send, on every call).
    attributes: dict[str, AttributeValue] = {
        "gen_ai.usage.input_tokens": record.input_tokens,
        "gen_ai.usage.output_tokens": record.output_tokens,
        "jesus.cost_micros": record.cost_micros,
    }
    if len(record.attempts) > 1:
        attributes["jesus.attempts"] = len(record.attempts)
    if record.fallbacks:
        attributes["jesus.fallbacks"] = [f"{f.from_adapter}->{f.to_adapter}" for f in record.fallbacks]
    if record.model:
        span.update_name(f"chat {record.model}")
        attributes["gen_ai.request.model"] = record.model
        attributes["gen_ai.response.model"] = (response.model if response is not None else "") or record.model
    if record.provider:
        attributes["gen_ai.provider.name"] = record.provider
    if record.adapter:
        attributes["jesus.adapter"] = record.adapter
    if response is not None:
        attributes["gen_ai.response.finish_reasons"] = [response.finish_reason]
        if content is not None:
            answer = [{"role": "assistant", "content": response.content}]
            attributes["gen_ai.output.messages"] = _messages(answer, content)
    if record.outcome != "ok":
        attributes["error.type"] = record.outcome
        span.set_status(Status(StatusCode.ERROR, record.error or record.outcome))
    span.set_attributes(attributes)
    span.end()


@dataclass(slots=True)
class AttemptTrace:
    """One attempt of a call on one adapter, kept until the call ends (times from `time.time_ns`)."""

    adapter: str
    provider: str
    model: str
    start_ns: int
    end_ns: int = 0
    response: ChatResponse | None = None
    error_kind: str | None = None

    def finish(self, result: object, error_kind: str | None) -> None:
        """The attempt ended with `result` (an answer when it is a ChatResponse) or `error_kind`."""
        self.end_ns = time.time_ns()
        self.response = result if isinstance(result, ChatResponse) else None
        self.error_kind = error_kind


def record_attempt_spans(call_span: Span, attempts: list[AttemptTrace], tracer: Tracer | None = None) -> None:
    """One span per attempt under the call's span, when the call took more than one (a retry or a
    fallback): "chat <model>" with that adapter's provider and model, its usage and finish reason, or
    the error's kind. A call answered at the first attempt has its call span only, which says as much
    (the attempt span would repeat it, and each span costs the router CPU to encode and send)."""
    if len(attempts) < 2 or not call_span.is_recording():
        return
    context = trace.set_span_in_context(call_span)
    for attempt in attempts:
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": attempt.provider,
            "gen_ai.system": attempt.provider,
            "gen_ai.request.model": attempt.model,
            "jesus.adapter": attempt.adapter,
        }
        if attempt.response is not None:
            attributes["gen_ai.response.model"] = attempt.response.model
            attributes["gen_ai.usage.input_tokens"] = attempt.response.usage.input_tokens
            attributes["gen_ai.usage.output_tokens"] = attempt.response.usage.output_tokens
            attributes["gen_ai.response.finish_reasons"] = [attempt.response.finish_reason]
        span = (tracer or default_tracer).start_span(
            f"chat {attempt.model}" if attempt.model else "chat",
            context=context,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=attempt.start_ns,
        )
        if attempt.error_kind is not None:
            span.set_attribute("error.type", attempt.error_kind)
            span.set_status(Status(StatusCode.ERROR, attempt.error_kind))
        span.end(end_time=attempt.end_ns or None)


def context_from_headers(headers: Mapping[str, str]) -> Context:
    """The trace context a caller sent (W3C `traceparent`), for the service's spans."""
    return propagate.extract(dict(headers))


def trace_id_of(context: Context) -> str | None:
    """The trace id (32 hex) of `context`'s span; None when the caller sent no valid `traceparent`."""
    span = trace.get_current_span(context).get_span_context()
    return format(span.trace_id, "032x") if span.is_valid else None


def trace_headers() -> dict[str, str]:
    """Headers that carry the current trace context to the router (for the runner's HTTP client)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
