"""The in-process router: walks a run's fallback chain over `jesus_adapters` adapters.

Per attempt: the circuit breaker admits or skips the adapter, its client-side rate limit lets the call
go or names the wait (both in `AdapterGuards`), the run's allowance admits the call (clamping its output
tokens), and the adapter gets the policy's per-attempt timeout, which it applies (the router applies
none of its own). Failures are classified by the pure `decide_on_error`: retry after a jittered
backoff, fail over, or stop. Every call ends in a `CallRecord` on the run's ledger, in the metrics and
in an OpenTelemetry span, whether it succeeded or not (`CallBooks`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from opentelemetry.context import Context
from opentelemetry.trace import Tracer

from jesus.logic.allowance import Reservation
from jesus.logic.routing import (
    BreakerConfig,
    BreakerState,
    ErrorAction,
    RoutePlan,
    backoff_seconds,
    decide_on_error,
)
from jesus.redaction import Redactor
from jesus.router.accounts import STORE_RETRY_AFTER_SECONDS, RunAccount, SharedStoreError
from jesus.router.books import CallBooks, meter
from jesus.router.guards import AdapterGuards
from jesus.router.logsafe import router_logger
from jesus.router.metrics import RouterMetrics
from jesus.router.records import AttemptRecord, CallRecord, FallbackRecord
from jesus.router.routed import (
    ALLOWANCE_EXCEEDED,
    CIRCUIT_OPEN,
    NO_ADAPTER_AVAILABLE,
    SHARED_STORE_UNAVAILABLE,
    RoutedAdapter,
    RoutedResponse,
    RoutedStreamEnd,
    RoutedStreamEvent,
    RouteError,
    as_adapter_error,
)
from jesus.router.streams import StreamEvent, close_stream, first_event
from jesus.telemetry import log_fields
from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.estimate import estimate_input_tokens, input_tokens_upper_bound
from jesus_adapters.types import ChatRequest, ChatResponse, StreamDone

log = router_logger(__name__)

T = TypeVar("T")

Attempt = Callable[[RoutedAdapter, ChatRequest], Awaitable[T]]
"""Sends one sized request to one adapter: a whole answer, or a stream's first event."""


@dataclass(frozen=True, slots=True)
class _Call:
    """One call being routed: what was asked, along which plan, on whose ledger, and since when."""

    plan: RoutePlan
    request: ChatRequest
    ledger: RunAccount
    record: CallRecord
    started: float
    estimated_input: int  # what the rate limiter takes at admission: a realistic estimate
    max_input: int  # what the allowance reserves: a true upper bound (ADR 14)


@dataclass(frozen=True, slots=True)
class _Failure:
    """Why an adapter gave no answer: the error kind, a sentence, and when it could answer again."""

    kind: str
    reason: str
    retry_after_seconds: float | None = None


@dataclass(slots=True)
class _Walked:
    """The adapter that accepted an attempt, what the attempt produced, and its reservation."""

    routed: RoutedAdapter
    started: float  # when the successful attempt began
    call_started: float  # when the call began, retries and fallbacks included
    reservation: Reservation
    estimated_input: int  # what the rate limiter took at admission
    booked: bool = False  # the reservation was settled (charged and given back), or kept on purpose


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
        trace_content: Redactor | None = None,
    ) -> None:
        # Read at every call: a route source (`jesus.router.sources`) may change it between calls.
        self.adapters = adapters if isinstance(adapters, dict) else dict(adapters)
        self.guards = AdapterGuards(breaker or BreakerConfig(), clock)
        # `trace_content`: calls' messages go on their spans, redacted by it (opt-in; off: none do).
        self.books = CallBooks(metrics, tracer, clock, trace_content)
        if metrics is not None:
            metrics.watch_breakers(lambda: {name: self.breaker_state(name).status for name in self.adapters})
        self._clock = clock
        self._sleep = sleep
        self._rand = rand

    @property
    def metrics(self) -> RouterMetrics | None:
        """The metrics every finished call is counted in, if any."""
        return self.books.metrics

    def breaker_state(self, adapter: str) -> BreakerState:
        """The current breaker state of one adapter."""
        return self.guards.breaker_state(adapter)

    def check_plan(self, plan: RoutePlan) -> None:
        """Raise ValueError when the plan names an adapter this router does not have."""
        missing = [name for name in plan.chain if name not in self.adapters]
        if missing:
            raise ValueError(f"route names unknown model adapters: {', '.join(missing)}")

    def pin(self, plan: RoutePlan) -> RoutePlan:
        """`plan` with each adapter's current price pinned into it (ADR 16); ValueError as `check_plan`."""
        self.check_plan(plan)
        return replace(plan, prices={name: self.adapters[name].price for name in plan.chain})

    async def complete(
        self,
        plan: RoutePlan,
        request: ChatRequest,
        ledger: RunAccount,
        *,
        trace_context: Context | None = None,
    ) -> RoutedResponse:
        """Answer `request` along `plan`'s chain, charging `ledger`; RouteError when nothing answers.

        `trace_context` is the caller's trace (the service passes the runner's); by default the
        current one.
        """
        record = self.books.open(ledger, request, streamed=False, trace_context=trace_context)

        async def attempt(routed: RoutedAdapter, sized: ChatRequest) -> ChatResponse:
            return await routed.adapter.complete(sized, timeout_seconds=plan.attempt_timeout_seconds)

        try:
            walked, response = await self._walk(plan, request, ledger, record, attempt)
            try:
                await self._settle(walked, response, ledger, record)
            finally:
                if not walked.booked:
                    await _release(ledger, walked.reservation)
        finally:
            self.books.abandon(record)
        return RoutedResponse(response, record)

    async def stream(
        self,
        plan: RoutePlan,
        request: ChatRequest,
        ledger: RunAccount,
        *,
        trace_context: Context | None = None,
    ) -> AsyncIterator[RoutedStreamEvent]:
        """Stream an answer along the chain: text deltas, then one RoutedStreamEnd.

        The chain is walked until an adapter produces its first event; after text has reached the
        caller a failure ends the call instead of failing over, since the text cannot be taken back.
        """
        record = self.books.open(ledger, request, streamed=True, trace_context=trace_context)

        async def attempt(
            routed: RoutedAdapter, sized: ChatRequest
        ) -> tuple[StreamEvent, AsyncIterator[StreamEvent]]:
            return await first_event(routed, sized, plan.attempt_timeout_seconds)

        try:
            walked, (first, events) = await self._walk(plan, request, ledger, record, attempt)
        except BaseException:
            self.books.abandon(record)
            raise
        try:
            event = first
            while not isinstance(event, StreamDone):
                yield event
                event = await self._next_event(walked, events, plan, record)
            await self._settle(walked, event.response, ledger, record)
            yield RoutedStreamEnd(event.response, record)
        finally:
            if not walked.booked:
                await _release(ledger, walked.reservation)
            self.books.abandon(record)
            await close_stream(events)

    async def _next_event(
        self, walked: _Walked, events: AsyncIterator[StreamEvent], plan: RoutePlan, record: CallRecord
    ) -> StreamEvent:
        """The stream's next event; a failure now ends the call, since the caller already has text."""
        try:
            # The adapter bounds every gap between events with the attempt timeout.
            return await anext(events)
        except StopAsyncIteration:
            error = AdapterError(
                ErrorKind.MALFORMED_RESPONSE,
                "stream ended without its final event",
                provider=walked.routed.name,
            )
            raise self._fail_mid_stream(walked, record, error) from None
        except Exception as exc:  # classified like a failed attempt
            raise self._fail_mid_stream(walked, record, as_adapter_error(exc, walked.routed, plan)) from exc

    # --- the walk --------------------------------------------------------------------------------

    async def _walk(
        self,
        plan: RoutePlan,
        request: ChatRequest,
        ledger: RunAccount,
        record: CallRecord,
        attempt: Attempt[T],
    ) -> tuple[_Walked, T]:
        """Try the chain's adapters in order until one answers; RouteError when none does."""
        call = _Call(
            plan,
            request,
            ledger,
            record,
            self._clock(),
            estimated_input=estimate_input_tokens(request),
            max_input=input_tokens_upper_bound(request),
        )
        last_failure: _Failure | None = None
        deleted: list[str] = []
        for position, name in enumerate(plan.chain):
            routed = self.adapters.get(name)
            if routed is None:
                # Pinned at registration and gone since (ADR 16): the rest of the chain is tried.
                deleted.append(name)
                last_failure = _Failure(
                    NO_ADAPTER_AVAILABLE,
                    f"model adapter {name!r} of the run's pinned chain no longer exists on this router",
                )
                record.attempts.append(
                    AttemptRecord(name, "skipped", 0.0, NO_ADAPTER_AVAILABLE, last_failure.reason)
                )
            else:
                pinned = plan.prices.get(name)
                if pinned is not None and pinned != routed.price:
                    routed = replace(routed, price=pinned)  # the run pays what it was admitted with
                outcome = await self._try_adapter(call, routed, attempt)
                if not isinstance(outcome, _Failure):
                    return outcome
                last_failure = outcome
            self._note_fallback(plan, position, record, last_failure)
        if deleted and len(deleted) == len(plan.chain):
            raise self.books.failed(
                record,
                call.started,
                NO_ADAPTER_AVAILABLE,
                "every model adapter of the run's pinned chain has been deleted: " + ", ".join(deleted),
            )
        failure = last_failure or _Failure(NO_ADAPTER_AVAILABLE, "the chain is empty")
        kind = NO_ADAPTER_AVAILABLE if failure.kind == CIRCUIT_OPEN else failure.kind
        raise self.books.failed(
            record,
            call.started,
            kind,
            f"every adapter in the chain failed; last: {failure.reason}",
            retry_after_seconds=failure.retry_after_seconds,
        )

    async def _try_adapter(
        self, call: _Call, routed: RoutedAdapter, attempt: Attempt[T]
    ) -> tuple[_Walked, T] | _Failure:
        """Attempts on one adapter, retried as the plan says: its answer, or why to fall over.

        Raises RouteError when the plan says to stop (the error does not fail over).
        """
        name = routed.name
        retries = 0
        while True:
            if not self.guards.admit(name):
                failure = _Failure(CIRCUIT_OPEN, f"circuit breaker of {name} is open")
                call.record.attempts.append(AttemptRecord(name, "skipped", 0.0, CIRCUIT_OPEN, failure.reason))
                return failure
            error = self.guards.rate_limited(routed, call.estimated_input)
            if error is not None:
                # Not sent, so neither the adapter's health nor the run's money is involved.
                self.guards.not_sent(name)
                call.record.attempts.append(
                    AttemptRecord(name, "skipped", 0.0, error.kind.value, error.message)
                )
            else:
                outcome = await self._attempt_once(call, routed, attempt)
                if not isinstance(outcome, AdapterError):
                    return outcome
                error = outcome
            verdict = decide_on_error(
                error.kind.value,
                retryable=error.retryable,
                retries_done=retries,
                plan=call.plan,
                retry_after_seconds=error.retry_after_seconds,
                elapsed_seconds=self._clock() - call.started,
            )
            failure = _Failure(
                error.kind.value, f"{name}: {error.message} ({verdict.reason})", error.retry_after_seconds
            )
            if verdict.action is ErrorAction.RETRY:
                await self._sleep(
                    backoff_seconds(retries, call.plan.retry, self._rand, error.retry_after_seconds)
                )
                retries += 1
                continue
            if verdict.action is ErrorAction.STOP:
                raise self.books.failed(
                    call.record,
                    call.started,
                    failure.kind,
                    failure.reason,
                    retry_after_seconds=failure.retry_after_seconds,
                )
            return failure

    async def _attempt_once(
        self, call: _Call, routed: RoutedAdapter, attempt: Attempt[T]
    ) -> tuple[_Walked, T] | AdapterError:
        """One attempt on one adapter: the allowance, the call under the attempt timeout, the books."""
        name = routed.name
        try:
            decision, reservation = await call.ledger.admit(
                requested_output_tokens=call.request.max_tokens,
                max_input_tokens=call.max_input,
                price=routed.price,
            )
        except SharedStoreError as exc:
            # Fail closed: a call is never sent without its reservation.
            self.guards.not_sent(name)
            self.guards.correct_estimate(routed, -call.estimated_input)
            raise self.books.failed(
                call.record,
                call.started,
                SHARED_STORE_UNAVAILABLE,
                f"the run's allowance cannot be checked, so the call was not sent: {exc}",
                retry_after_seconds=STORE_RETRY_AFTER_SECONDS,
            ) from exc
        if reservation is None:
            self.guards.not_sent(name)
            self.guards.correct_estimate(routed, -call.estimated_input)  # never sent: its credits return
            raise self.books.failed(call.record, call.started, ALLOWANCE_EXCEEDED, decision.reason)
        sized = (
            call.request
            if decision.max_output_tokens == call.request.max_tokens
            else replace(call.request, max_tokens=decision.max_output_tokens)
        )
        attempt_started = self._clock()
        traced = self.books.start_attempt(call.record, routed)
        try:
            # The adapter applies the attempt timeout it was given (ADR 0009); the router adds none.
            result = await attempt(routed, sized)
        except asyncio.CancelledError:
            if traced is not None:
                traced.finish(None, "Cancelled")
            await _release(call.ledger, reservation)
            self.guards.not_sent(name)
            raise
        except Exception as exc:  # every failure of an attempt is classified and recorded
            error = as_adapter_error(exc, routed, call.plan)
            if traced is not None:
                traced.finish(None, error.kind.value)
        else:
            if traced is not None:
                traced.finish(result, None)
            return _Walked(routed, attempt_started, call.started, reservation, call.estimated_input), result
        if error.usage is not None and error.usage.total_tokens:
            # A provider may bill an answer that still failed (a refusal, a filtered answer): meter it,
            # which gives the reservation back in the same step.
            try:
                await meter(call.record, call.ledger, error.usage, routed.price, reservation, name)
            except SharedStoreError as exc:
                _kept_reservation(call.ledger, exc)
        else:
            await _release(call.ledger, reservation)
        now = self._clock()
        self.guards.failed(name, error.kind, now)
        call.record.attempts.append(
            AttemptRecord(name, "error", (now - attempt_started) * 1000, error.kind.value, error.message)
        )
        with log_fields(adapter=name):
            log.info(
                "Model call attempt failed adapter=%s kind=%s run=%s error=%s",
                name,
                error.kind.value,
                call.ledger.run,
                error.message,
            )
        return error

    def _note_fallback(
        self, plan: RoutePlan, position: int, record: CallRecord, failure: _Failure | None
    ) -> None:
        kind, reason = (failure.kind, failure.reason) if failure else ("", "")
        if position + 1 < len(plan.chain):
            record.fallbacks.append(
                FallbackRecord(plan.chain[position], plan.chain[position + 1], reason, kind)
            )

    # --- the books -------------------------------------------------------------------------------

    async def _settle(
        self, walked: _Walked, response: ChatResponse, ledger: RunAccount, record: CallRecord
    ) -> None:
        """Book an answered call: charge its usage and give its reservation back in one step (or, when
        the shared store cannot take it, keep the reservation in the usage's place); `walked.booked`
        says the reservation is dealt with."""
        name = walked.routed.name
        self.guards.succeeded(name)
        now = self._clock()
        record.attempts.append(AttemptRecord(name, "ok", (now - walked.started) * 1000))
        record.adapter = name
        record.provider = response.provider or walked.routed.adapter.provider
        record.model = response.model or walked.routed.adapter.model
        try:
            exceeded = await meter(
                record, ledger, response.usage, walked.routed.price, walked.reservation, name
            )
        except SharedStoreError as exc:
            exceeded = _kept_reservation(ledger, exc)
        walked.booked = True
        record.latency_ms = (now - walked.call_started) * 1000
        self.guards.correct_estimate(walked.routed, response.usage.total_tokens - walked.estimated_input)
        if exceeded is not None:
            # The answer is delivered (it is paid for), and the run learns it cannot go on.
            record.error = exceeded
        self.books.answered(record, response)

    def _fail_mid_stream(self, walked: _Walked, record: CallRecord, error: AdapterError) -> RouteError:
        name = walked.routed.name
        now = self._clock()
        self.guards.failed(name, error.kind, now)
        record.attempts.append(
            AttemptRecord(name, "error", (now - walked.started) * 1000, error.kind.value, error.message)
        )
        record.adapter = name
        return self.books.failed(
            record, walked.call_started, error.kind.value, f"{name}: stream broke: {error.message}"
        )


async def _release(ledger: RunAccount, reservation: Reservation) -> None:
    """Give a call's reservation back; when the shared store cannot take it, it stays held (the run's
    allowance shrinks by it until the token expires, it never grows)."""
    try:
        await ledger.release(reservation)
    except SharedStoreError as exc:
        _kept_reservation(ledger, exc)


def _kept_reservation(ledger: RunAccount, exc: SharedStoreError) -> str:
    """Log, and say, that a call's usage or release could not be written, so its worst case stays
    reserved in its place."""
    log.warning("Kept a call's reservation run=%s error=%s", ledger.run, exc)
    return f"the call's usage could not be booked, so its worst case stays reserved: {exc}"
