"""The in-process router: walks a run's fallback chain over `jesus_adapters` adapters.

Per attempt: the circuit breaker admits or skips the adapter, its client-side rate limit lets the call
go or names the wait, the run's allowance admits the call (clamping its output tokens), and the
adapter gets the policy's per-attempt timeout, which it applies (the router applies none of its own).
Failures are classified by the pure `decide_on_error`: retry after a jittered backoff, fail over, or
stop. Every call ends in a `CallRecord` on the run's
ledger, in the metrics and in an OpenTelemetry span, whether it succeeded or not.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from opentelemetry.context import Context
from opentelemetry.trace import Span, Tracer

from jesus.logic.routing import (
    BreakerConfig,
    BreakerState,
    CallPrice,
    ErrorAction,
    RateLimit,
    RateState,
    RoutePlan,
    backoff_seconds,
    breaker_admit,
    breaker_on_failure,
    breaker_on_success,
    breaker_release_probe,
    cost_micros,
    decide_on_error,
    estimate_input_tokens,
    rate_admit,
    rate_charge,
)
from jesus.router.ledger import Reservation, RunLedger
from jesus.router.metrics import RouterMetrics
from jesus.router.records import AttemptRecord, CallRecord, FallbackRecord
from jesus.router.tracing import end_call_span, start_call_span
from jesus_adapters.base import ModelAdapter
from jesus_adapters.errors import AdapterError, ErrorKind, RouteErrorKind, error_rule
from jesus_adapters.types import ChatRequest, ChatResponse, StreamDone, TextDelta

log = logging.getLogger(__name__)

T = TypeVar("T")

# The router's own verdicts, under the names the router package has always exported.
ALLOWANCE_EXCEEDED = RouteErrorKind.ALLOWANCE_EXCEEDED
NO_ADAPTER_AVAILABLE = RouteErrorKind.NO_ADAPTER_AVAILABLE
CIRCUIT_OPEN = RouteErrorKind.CIRCUIT_OPEN


@dataclass(frozen=True, slots=True)
class RoutedAdapter:
    """An adapter the router may call, under the name RoutePolicies use for it, with its prices."""

    name: str
    adapter: ModelAdapter
    price: CallPrice = field(default_factory=CallPrice)
    rate_limit: RateLimit | None = None


class RouteError(Exception):
    """A call that no adapter answered. `kind` is an ErrorKind value, `AllowanceExceeded` or
    `NoAdapterAvailable`; `record` is the call's full record."""

    def __init__(self, kind: str, reason: str, record: CallRecord) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.record = record

    @property
    def stops_run(self) -> bool:
        """Whether the run cannot usefully go on (its allowance is spent), as the error table says."""
        return error_rule(self.kind).stops_run


@dataclass(frozen=True, slots=True)
class RoutedResponse:
    """An answer and the record of how it was obtained."""

    response: ChatResponse
    record: CallRecord


@dataclass(frozen=True, slots=True)
class RoutedStreamEnd:
    """The last event of a routed stream: the assembled answer and the call's record."""

    response: ChatResponse
    record: CallRecord


RoutedStreamEvent = TextDelta | RoutedStreamEnd


@dataclass(slots=True)
class _Walked:
    """The adapter that accepted an attempt, what the attempt produced, and its reservation."""

    routed: RoutedAdapter
    started: float  # when the successful attempt began
    call_started: float  # when the call began, retries and fallbacks included
    reservation: Reservation
    estimated_input: int  # what the rate limiter took at admission


class Router:
    """Routes chat requests along fallback chains; shared by every run of a process.

    The clock, sleep and random source are injected so tests run without waiting and decide jitter.
    """

    def __init__(
        self,
        adapters: Mapping[str, RoutedAdapter],
        *,
        breaker: BreakerConfig | None = None,
        metrics: RouterMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        tracer: Tracer | None = None,
    ) -> None:
        self.adapters = dict(adapters)
        self.breaker_config = breaker or BreakerConfig()
        self.metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._breakers: dict[str, BreakerState] = {}
        self._rates: dict[str, RateState] = {}
        self._spans: dict[str, Span] = {}
        self._tracer = tracer
        self._call_ids = itertools.count(1)

    def breaker_state(self, adapter: str) -> BreakerState:
        """The current breaker state of one adapter."""
        return self._breakers.get(adapter, BreakerState())

    def check_plan(self, plan: RoutePlan) -> None:
        """Raise ValueError when the plan names an adapter this router does not have."""
        missing = [name for name in plan.chain if name not in self.adapters]
        if missing:
            raise ValueError(f"route names unknown model adapters: {', '.join(missing)}")

    async def complete(
        self,
        plan: RoutePlan,
        request: ChatRequest,
        ledger: RunLedger,
        *,
        trace_context: Context | None = None,
    ) -> RoutedResponse:
        """Answer `request` along `plan`'s chain, charging `ledger`; RouteError when nothing answers.

        `trace_context` is the caller's trace (the service passes the runner's); by default the
        current one.
        """
        record = self._new_record(ledger, request, streamed=False, trace_context=trace_context)

        async def attempt(routed: RoutedAdapter, sized: ChatRequest) -> ChatResponse:
            return await routed.adapter.complete(sized, timeout_seconds=plan.attempt_timeout_seconds)

        try:
            walked, response = await self._walk(plan, request, ledger, record, attempt)
            try:
                self._settle(walked, response, ledger, record)
            finally:
                ledger.release(walked.reservation)
        finally:
            self._abandon_span(record)
        return RoutedResponse(response, record)

    async def stream(
        self,
        plan: RoutePlan,
        request: ChatRequest,
        ledger: RunLedger,
        *,
        trace_context: Context | None = None,
    ) -> AsyncIterator[RoutedStreamEvent]:
        """Stream an answer along the chain: text deltas, then one RoutedStreamEnd.

        The chain is walked until an adapter produces its first event; after text has reached the
        caller a failure ends the call instead of failing over, since the text cannot be taken back.
        """
        record = self._new_record(ledger, request, streamed=True, trace_context=trace_context)

        async def attempt(
            routed: RoutedAdapter, sized: ChatRequest
        ) -> tuple[TextDelta | StreamDone, AsyncIterator[TextDelta | StreamDone]]:
            events = aiter(routed.adapter.stream(sized, timeout_seconds=plan.attempt_timeout_seconds))
            try:
                first = await anext(events)
            except StopAsyncIteration:
                raise AdapterError(
                    ErrorKind.MALFORMED_RESPONSE, "stream ended without an answer", provider=routed.name
                ) from None
            except BaseException:
                await _close(events)
                raise
            return first, events

        try:
            walked, (first, events) = await self._walk(plan, request, ledger, record, attempt)
        except BaseException:
            self._abandon_span(record)
            raise
        try:
            event: TextDelta | StreamDone = first
            while True:
                if isinstance(event, StreamDone):
                    self._settle(walked, event.response, ledger, record)
                    yield RoutedStreamEnd(event.response, record)
                    return
                yield event
                try:
                    # The adapter bounds every gap between events with the attempt timeout.
                    event = await anext(events)
                except StopAsyncIteration:
                    raise self._fail_mid_stream(
                        walked,
                        record,
                        AdapterError(
                            ErrorKind.MALFORMED_RESPONSE,
                            "stream ended without its final event",
                            provider=walked.routed.name,
                        ),
                    ) from None
                except Exception as exc:  # classified like a failed attempt
                    error = _as_adapter_error(exc, walked.routed, plan)
                    raise self._fail_mid_stream(walked, record, error) from exc
        finally:
            ledger.release(walked.reservation)
            self._abandon_span(record)
            await _close(events)

    # --- the walk --------------------------------------------------------------------------------

    def _new_record(
        self, ledger: RunLedger, request: ChatRequest, *, streamed: bool, trace_context: Context | None
    ) -> CallRecord:
        record = CallRecord(call_id=f"{ledger.run}-{next(self._call_ids)}", run=ledger.run, streamed=streamed)
        ledger.calls.append(record)
        self._spans[record.call_id] = start_call_span(
            request, ledger.run, streamed=streamed, context=trace_context, tracer=self._tracer
        )
        return record

    def _end_span(self, record: CallRecord, response: ChatResponse | None) -> None:
        span = self._spans.pop(record.call_id, None)
        if span is not None:
            end_call_span(span, record, response)

    def _abandon_span(self, record: CallRecord) -> None:
        """End the span of a call that ended neither in an answer nor a RouteError (cancelled)."""
        if record.call_id in self._spans:
            if record.outcome == "ok" and record.adapter is None:
                record.outcome = "Cancelled"
            self._end_span(record, None)

    async def _walk(
        self,
        plan: RoutePlan,
        request: ChatRequest,
        ledger: RunLedger,
        record: CallRecord,
        attempt: Callable[[RoutedAdapter, ChatRequest], Awaitable[T]],
    ) -> tuple[_Walked, T]:
        started = self._clock()
        estimated_input = estimate_input_tokens(_prompt_characters(request))
        last_failure: tuple[str, str] | None = None
        for position, name in enumerate(plan.chain):
            routed = self.adapters.get(name)
            if routed is None:
                last_failure = (NO_ADAPTER_AVAILABLE, f"model adapter {name!r} is not known to the router")
                record.attempts.append(
                    AttemptRecord(name, "skipped", 0.0, NO_ADAPTER_AVAILABLE, last_failure[1])
                )
                self._note_fallback(plan, position, record, last_failure)
                continue
            retries = 0
            while True:
                admitted, state = breaker_admit(self.breaker_state(name), self.breaker_config, self._clock())
                self._breakers[name] = state
                if not admitted:
                    last_failure = (CIRCUIT_OPEN, f"circuit breaker of {name} is open")
                    record.attempts.append(AttemptRecord(name, "skipped", 0.0, CIRCUIT_OPEN, last_failure[1]))
                    break
                limited = self._rate_limited(routed, estimated_input)
                if limited is not None:
                    # Not sent, so neither the adapter's health nor the run's money is involved.
                    self._breakers[name] = breaker_release_probe(self._breakers[name])
                    record.attempts.append(
                        AttemptRecord(name, "skipped", 0.0, limited.kind.value, limited.message)
                    )
                    error = limited
                else:
                    outcome = await self._attempt_once(
                        plan, routed, request, ledger, record, attempt, estimated_input, started
                    )
                    if not isinstance(outcome, AdapterError):
                        return outcome
                    error = outcome
                verdict = decide_on_error(
                    error.kind.value,
                    retryable=error.retryable,
                    retries_done=retries,
                    plan=plan,
                    retry_after_seconds=error.retry_after_seconds,
                    elapsed_seconds=self._clock() - started,
                )
                last_failure = (error.kind.value, f"{name}: {error.message} ({verdict.reason})")
                if verdict.action is ErrorAction.RETRY:
                    await self._sleep(
                        backoff_seconds(retries, plan.retry, self._rand, error.retry_after_seconds)
                    )
                    retries += 1
                    continue
                if verdict.action is ErrorAction.STOP:
                    raise self._fail(record, started, error.kind.value, last_failure[1])
                break
            self._note_fallback(plan, position, record, last_failure)
        kind, reason = last_failure or (NO_ADAPTER_AVAILABLE, "the chain is empty")
        if kind == CIRCUIT_OPEN:
            kind = NO_ADAPTER_AVAILABLE
        raise self._fail(record, started, kind, f"every adapter in the chain failed; last: {reason}")

    async def _attempt_once(
        self,
        plan: RoutePlan,
        routed: RoutedAdapter,
        request: ChatRequest,
        ledger: RunLedger,
        record: CallRecord,
        attempt: Callable[[RoutedAdapter, ChatRequest], Awaitable[T]],
        estimated_input: int,
        call_started: float,
    ) -> tuple[_Walked, T] | AdapterError:
        """One attempt on one adapter: the allowance, the call under the attempt timeout, the books."""
        name = routed.name
        decision, reservation = ledger.admit(
            requested_output_tokens=request.max_tokens,
            estimated_input_tokens=estimated_input,
            price=routed.price,
        )
        if reservation is None:
            self._breakers[name] = breaker_release_probe(self._breakers[name])
            raise self._fail(record, call_started, ALLOWANCE_EXCEEDED, decision.reason)
        sized = (
            request
            if decision.max_output_tokens == request.max_tokens
            else replace(request, max_tokens=decision.max_output_tokens)
        )
        attempt_started = self._clock()
        try:
            # The adapter applies the attempt timeout it was given (ADR 0009); the router adds none.
            result = await attempt(routed, sized)
        except asyncio.CancelledError:
            ledger.release(reservation)
            self._breakers[name] = breaker_release_probe(self._breakers[name])
            raise
        except Exception as exc:  # every failure of an attempt is classified and recorded
            ledger.release(reservation)
            error = _as_adapter_error(exc, routed, plan)
        else:
            return _Walked(routed, attempt_started, call_started, reservation, estimated_input), result
        now = self._clock()
        self._charge_failed_attempt(routed, error, ledger, record)
        self._breakers[name] = breaker_on_failure(self._breakers[name], self.breaker_config, now, error.kind)
        record.attempts.append(
            AttemptRecord(name, "error", (now - attempt_started) * 1000, error.kind.value, error.message)
        )
        log.info(
            "Model call attempt failed adapter=%s kind=%s run=%s error=%s",
            name,
            error.kind.value,
            ledger.run,
            error.message,
        )
        return error

    def _rate_limited(self, routed: RoutedAdapter, estimated_input: int) -> AdapterError | None:
        """The adapter's client-side rate limit, as a RateLimited error with the wait, or None."""
        if routed.rate_limit is None:
            return None
        wait, state = rate_admit(
            self._rates.get(routed.name, RateState()), routed.rate_limit, self._clock(), estimated_input
        )
        self._rates[routed.name] = state
        if wait <= 0:
            return None
        return AdapterError(
            ErrorKind.RATE_LIMITED,
            f"client-side rate limit of {routed.name} reached; the next call fits in {wait:.3f}s",
            provider=routed.name,
            retry_after_seconds=wait,
        )

    def _note_fallback(
        self, plan: RoutePlan, position: int, record: CallRecord, failure: tuple[str, str] | None
    ) -> None:
        kind, reason = failure or ("", "")
        if position + 1 < len(plan.chain):
            record.fallbacks.append(
                FallbackRecord(plan.chain[position], plan.chain[position + 1], reason, kind)
            )

    def _settle(self, walked: _Walked, response: ChatResponse, ledger: RunLedger, record: CallRecord) -> None:
        name = walked.routed.name
        self._breakers[name] = breaker_on_success(self.breaker_state(name))
        now = self._clock()
        cost = cost_micros(response.usage.input_tokens, response.usage.output_tokens, walked.routed.price)
        record.attempts.append(AttemptRecord(name, "ok", (now - walked.started) * 1000))
        record.adapter = name
        record.provider = response.provider or walked.routed.adapter.provider
        record.model = response.model or walked.routed.adapter.model
        record.input_tokens += response.usage.input_tokens
        record.output_tokens += response.usage.output_tokens
        record.cost_micros += cost
        record.latency_ms = (now - walked.call_started) * 1000
        ledger.charge(response.usage.total_tokens, cost)
        if walked.routed.rate_limit is not None and name in self._rates:
            self._rates[name] = rate_charge(
                self._rates[name],
                walked.routed.rate_limit,
                response.usage.total_tokens - walked.estimated_input,
            )
        exceeded = ledger.exceeded()
        if exceeded is not None:
            # The answer is delivered (it is paid for), and the run learns it cannot go on.
            record.error = exceeded
        if self.metrics is not None:
            self.metrics.observe(record)
        self._end_span(record, response)

    def _charge_failed_attempt(
        self, routed: RoutedAdapter, error: AdapterError, ledger: RunLedger, record: CallRecord
    ) -> None:
        """A provider may bill an answer that still failed (a refusal, a filtered answer): meter it."""
        usage = error.usage
        if usage is None or usage.total_tokens == 0:
            return
        cost = cost_micros(usage.input_tokens, usage.output_tokens, routed.price)
        record.input_tokens += usage.input_tokens
        record.output_tokens += usage.output_tokens
        record.cost_micros += cost
        ledger.charge(usage.total_tokens, cost)

    def _fail(self, record: CallRecord, started: float, kind: str, reason: str) -> RouteError:
        record.outcome = kind
        record.error = reason
        record.latency_ms = (self._clock() - started) * 1000
        if self.metrics is not None:
            self.metrics.observe(record)
        log.info("Model call failed run=%s kind=%s reason=%s", record.run, kind, reason)
        self._end_span(record, None)
        return RouteError(kind, reason, record)

    def _fail_mid_stream(self, walked: _Walked, record: CallRecord, error: AdapterError) -> RouteError:
        name = walked.routed.name
        now = self._clock()
        self._breakers[name] = breaker_on_failure(
            self.breaker_state(name), self.breaker_config, now, error.kind
        )
        record.attempts.append(
            AttemptRecord(name, "error", (now - walked.started) * 1000, error.kind.value, error.message)
        )
        record.adapter = name
        return self._fail(
            record, walked.call_started, error.kind.value, f"{name}: stream broke: {error.message}"
        )


def _as_adapter_error(exc: BaseException, routed: RoutedAdapter, plan: RoutePlan) -> AdapterError:
    if isinstance(exc, AdapterError):
        return exc
    if isinstance(exc, TimeoutError):
        return AdapterError(
            ErrorKind.TIMEOUT, f"no answer within {plan.attempt_timeout_seconds:g}s", provider=routed.name
        )
    # An adapter that raises something outside the taxonomy is broken or got garbage; either way the
    # answer is unusable, which is what MalformedResponse means.
    return AdapterError(
        ErrorKind.MALFORMED_RESPONSE, f"adapter failed: {type(exc).__name__}: {exc}", provider=routed.name
    )


def _prompt_characters(request: ChatRequest) -> int:
    total = 0
    for message in request.messages:
        total += len(message.content)
        for call in message.tool_calls:
            total += len(call.name) + len(str(call.arguments))
    for tool in request.tools:
        total += len(tool.name) + len(tool.description) + len(str(tool.input_schema))
    return total


async def _close(events: AsyncIterator[object]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a broken stream must not mask the real error
            log.debug("Closing a model stream failed", exc_info=True)
