"""The books of calls in flight: each call's record, its span, its metrics, and its charge to the run.

A call ends exactly once, in an answer (`answered`), a RouteError (`failed`), or neither when its
caller went away (`abandon`); each ends the call's span and the metrics see it once.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from opentelemetry.context import Context
from opentelemetry.trace import Span, Tracer

from jesus.logic.allowance import CallPrice, Reservation, cost_micros
from jesus.redaction import Redactor
from jesus.router.accounts import RunAccount
from jesus.router.logsafe import router_logger
from jesus.router.metrics import RouterMetrics
from jesus.router.records import CallRecord
from jesus.router.routed import RoutedAdapter, RouteError
from jesus.router.tracing import AttemptTrace, end_call_span, record_attempt_spans, start_call_span
from jesus_adapters.types import ChatRequest, ChatResponse, Usage

log = router_logger("jesus.router.core")  # the name the router's call lines have always had


class CallBooks:
    """Opens and closes the record, span and metrics of every call a router makes."""

    def __init__(
        self,
        metrics: RouterMetrics | None,
        tracer: Tracer | None,
        clock: Callable[[], float],
        content: Redactor | None = None,
    ) -> None:
        self.metrics = metrics
        self._tracer = tracer
        self._content = content  # set: calls' messages go on their spans, redacted by it
        self._clock = clock
        self._spans: dict[str, Span] = {}
        self._attempts: dict[str, list[AttemptTrace]] = {}
        self._call_ids = itertools.count(1)

    def open(
        self, ledger: RunAccount, request: ChatRequest, *, streamed: bool, trace_context: Context | None
    ) -> CallRecord:
        """A new call of `ledger`'s run: its record and its span. The record goes back to the caller
        with the answer or the error; nothing keeps it here (a run's records would grow for the
        token's lifetime)."""
        record = CallRecord(call_id=f"{ledger.run}-{next(self._call_ids)}", run=ledger.run, streamed=streamed)
        self._spans[record.call_id] = start_call_span(
            request,
            ledger.run,
            streamed=streamed,
            context=trace_context,
            tracer=self._tracer,
            content=self._content,
        )
        return record

    def answered(self, record: CallRecord, response: ChatResponse) -> None:
        """The call got `response` (its record is filled in): count it and end its span."""
        if self.metrics is not None:
            self.metrics.observe(record, self._trace_id(record))
        self._end_span(record, response)

    def failed(
        self,
        record: CallRecord,
        started: float,
        kind: str,
        reason: str,
        *,
        retry_after_seconds: float | None = None,
    ) -> RouteError:
        """The call failed with `kind`: finish its record, count it, end its span; the error to raise
        (with when the adapter said it could answer again, if it said)."""
        record.outcome = kind
        record.error = reason
        record.latency_ms = (self._clock() - started) * 1000
        if self.metrics is not None:
            self.metrics.observe(record, self._trace_id(record))
        log.info("Model call failed run=%s kind=%s reason=%s", record.run, kind, reason)
        self._end_span(record, None)
        return RouteError(kind, reason, record, retry_after_seconds)

    def start_attempt(self, record: CallRecord, routed: RoutedAdapter) -> AttemptTrace | None:
        """Note an attempt of `record`'s call on `routed` for its span (`finish` it when it ends); None
        when the call's span does not record (tracing off)."""
        span = self._spans.get(record.call_id)
        if span is None or not span.is_recording():
            return None
        adapter = routed.adapter
        attempt = AttemptTrace(routed.name, adapter.provider, adapter.model, time.time_ns())
        self._attempts.setdefault(record.call_id, []).append(attempt)
        return attempt

    def abandon(self, record: CallRecord) -> None:
        """End the span of a call that ended neither in an answer nor a RouteError (cancelled)."""
        if record.call_id in self._spans:
            if record.outcome == "ok" and record.adapter is None:
                record.outcome = "Cancelled"
            self._end_span(record, None)

    def _trace_id(self, record: CallRecord) -> str | None:
        """The trace of `record`'s call (the caller's, from its traceparent, even with tracing off), for
        its metrics' exemplars; None when it has none."""
        span = self._spans.get(record.call_id)
        context = span.get_span_context() if span is not None else None
        return format(context.trace_id, "032x") if context is not None and context.is_valid else None

    def _end_span(self, record: CallRecord, response: ChatResponse | None) -> None:
        span = self._spans.pop(record.call_id, None)
        attempts = self._attempts.pop(record.call_id, None)
        if span is not None:
            if attempts:
                record_attempt_spans(span, attempts, self._tracer)
            end_call_span(span, record, response, self._content)


async def meter(
    record: CallRecord,
    ledger: RunAccount,
    usage: Usage,
    price: CallPrice,
    reservation: Reservation,
    adapter: str,
) -> str | None:
    """Add `usage` and what it costs at `price` to the call's record and settle it on the run's account
    against the call's `reservation`, which goes back in the same step (an overrun is charged too, and
    stops the run); why the run may not go on now, or None. SharedStoreError when the account cannot be
    reached (then neither happened, as far as the router knows)."""
    cost = cost_micros(usage.input_tokens, usage.output_tokens, price)
    record.input_tokens += usage.input_tokens
    record.output_tokens += usage.output_tokens
    record.cost_micros += cost
    return await ledger.settle(reservation, usage.input_tokens, usage.output_tokens, cost, adapter=adapter)
