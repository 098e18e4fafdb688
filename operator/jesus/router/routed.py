"""What the router works with and hands back: routed adapters, answers, stream ends, and RouteError."""

from __future__ import annotations

from dataclasses import dataclass, field

from jesus.logic.allowance import CallPrice
from jesus.logic.routing import RateLimit, RoutePlan
from jesus.router.records import CallRecord
from jesus_adapters.base import ModelAdapter
from jesus_adapters.errors import AdapterError, ErrorKind, FailedCallError, RouteErrorKind
from jesus_adapters.types import ChatResponse, TextDelta

# The router's own verdicts, under the names the router package has always exported.
ALLOWANCE_EXCEEDED = RouteErrorKind.ALLOWANCE_EXCEEDED
NO_ADAPTER_AVAILABLE = RouteErrorKind.NO_ADAPTER_AVAILABLE
CIRCUIT_OPEN = RouteErrorKind.CIRCUIT_OPEN
SHARED_STORE_UNAVAILABLE = RouteErrorKind.SHARED_STORE_UNAVAILABLE


@dataclass(frozen=True, slots=True)
class RoutedAdapter:
    """An adapter the router may call, under the name RoutePolicies use for it, with its prices."""

    name: str
    adapter: ModelAdapter
    price: CallPrice = field(default_factory=CallPrice)
    rate_limit: RateLimit | None = None


class RouteError(FailedCallError):
    """A call that no adapter answered. `kind` is an ErrorKind value, `AllowanceExceeded` or
    `NoAdapterAvailable`; `record` is the call's full record; `retry_after_seconds`, when the last
    adapter said (a provider's Retry-After, or the wait of the router's own rate limit)."""

    def __init__(
        self, kind: str, reason: str, record: CallRecord, retry_after_seconds: float | None = None
    ) -> None:
        super().__init__(kind, reason)
        self.record = record
        self.retry_after_seconds = retry_after_seconds


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


def as_adapter_error(exc: BaseException, routed: RoutedAdapter, plan: RoutePlan) -> AdapterError:
    """Any failure of an attempt, in the error taxonomy (an AdapterError passes through unchanged)."""
    if isinstance(exc, AdapterError):
        return exc
    if isinstance(exc, TimeoutError):
        return AdapterError(
            ErrorKind.TIMEOUT, f"no answer within {plan.attempt_timeout_seconds:g}s", provider=routed.name
        )
    return unexpected_error(exc, routed.name)


def unexpected_error(exc: BaseException, provider: str) -> AdapterError:
    """A failure outside the error taxonomy, in it: MalformedResponse with the exception's text."""
    # An adapter that raises something outside the taxonomy is broken or got garbage; either way the
    # answer is unusable, which is what MalformedResponse means.
    return AdapterError(
        ErrorKind.MALFORMED_RESPONSE, f"adapter failed: {type(exc).__name__}: {exc}", provider=provider
    )
