"""The runner's spans: the run's agent invocation, each turn, each tool call (GenAI conventions).

The operator gives the runner its place in the run's trace as `TRACEPARENT` (W3C); the model calls of a
turn carry the turn's context to the router (`jesus.router.tracing.trace_headers`), whose spans become
the turn's children. Only names and ids the platform established go into attributes: no prompt, answer,
argument or tool result.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

log = logging.getLogger(__name__)

tracer = trace.get_tracer("jesus.runner")

TRACEPARENT_VARIABLE = "TRACEPARENT"
_SAFE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def parent_context(environ: Mapping[str, str]) -> Context:
    """The context `TRACEPARENT` names; an empty one (a new trace) when it is unset or malformed."""
    value = environ.get(TRACEPARENT_VARIABLE, "")
    context = propagate.extract({"traceparent": value}) if value else Context()
    if value and not trace.get_current_span(context).get_span_context().is_valid:
        # The value is the pod's to set: logged as a repr and cut, never as a line of its own.
        log.warning("Ignored malformed TRACEPARENT value=%r", value[:80])
    return context


def trace_id_of(context: Context) -> str | None:
    """The trace id (32 hex) of `context`'s span, None when it has none."""
    span = trace.get_current_span(context).get_span_context()
    return format(span.trace_id, "032x") if span.is_valid else None


def start_run_span(run: str, namespace: str, attempt: int | None, context: Context) -> Span:
    """The span of the whole attempt (`invoke_agent`), a child of the operator's attempt span."""
    attributes: dict[str, str | int] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": run,
        "jesus.run": run,
        "jesus.namespace": namespace,
    }
    if attempt is not None:
        attributes["jesus.attempt"] = attempt
    return tracer.start_span(
        f"invoke_agent {run}", context=context, kind=SpanKind.INTERNAL, attributes=attributes
    )


def end_run_span(span: Span, outcome: str, succeeded: bool, turns: int) -> None:
    """Record the run's outcome on its span and end it."""
    span.set_attribute("jesus.outcome", outcome)
    span.set_attribute("jesus.turns", turns)
    if not succeeded:
        span.set_attribute("error.type", outcome)
        span.set_status(Status(StatusCode.ERROR, outcome))
    span.end()


def tool_span_attributes(name: str, call_id: str, server: str | None) -> dict[str, str]:
    """A tool call's attributes; the tool's name only when it is one of the run's tools (a model may
    name anything), the call id only when it looks like one."""
    attributes = {"gen_ai.operation.name": "execute_tool"}
    if server is not None:
        attributes["gen_ai.tool.name"] = name
        attributes["jesus.tool.server"] = server
    if _SAFE_ID.fullmatch(call_id):
        attributes["gen_ai.tool.call.id"] = call_id
    return attributes
