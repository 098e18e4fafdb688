"""One error taxonomy, and the one table of what each kind of failure means everywhere.

Adapters map every provider failure into an `ErrorKind`; the router adds its own verdicts
(`RouteErrorKind`). `ERROR_TABLE` says, for every kind, whether a retry may help, whether RoutePolicies
fail over on it by default, whether it counts against an adapter's circuit breaker, which HTTP status
the router service answers with, and how the runner records a run that ends on it. The adapters, the
API models (`failoverOn`), the routing logic, the router and the runner all read this table; nothing
else lists error kinds. This module imports no SDK (an import-linter contract proves it), so the pure
core may import it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from jesus_adapters.types import Usage


class ErrorKind(enum.StrEnum):
    """Why a model call failed, independent of the provider: what adapters raise.

    The values are the names RoutePolicy specs use in `failoverOn`, in the order the CRD lists them.
    """

    RATE_LIMITED = "RateLimited"
    OVERLOADED = "Overloaded"  # 5xx and the providers' "overloaded" answers
    TIMEOUT = "Timeout"
    CONNECTION = "Connection"
    MALFORMED_RESPONSE = "MalformedResponse"
    INVALID_REQUEST = "InvalidRequest"
    AUTHENTICATION = "Authentication"
    CONTENT_FILTERED = "ContentFiltered"
    CONTEXT_TOO_LONG = "ContextTooLong"

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed if sent again (here or to another adapter)."""
        return ERROR_TABLE[self].retryable


class RouteErrorKind(enum.StrEnum):
    """Why a routed call failed where no adapter's answer says why: the router's own verdicts."""

    ALLOWANCE_EXCEEDED = "AllowanceExceeded"  # the run's token or cost allowance is spent
    NO_ADAPTER_AVAILABLE = "NoAdapterAvailable"  # no adapter in the chain could be tried
    # One attempt skipped; a call that ends on it is reported as NoAdapterAvailable.
    CIRCUIT_OPEN = "CircuitOpen"
    # The store of runs' allowances and revocations (Redis) could not answer: the call was not sent.
    SHARED_STORE_UNAVAILABLE = "SharedStoreUnavailable"


# The runner's `RunOutcome` values a failed model call can end a run with.
RunFailure = Literal["ModelFailed", "LimitExceeded"]


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """What one kind of failure means to every part of the platform.

    `retryable`: the same request may pass if sent again. `fails_over_by_default`: in a RoutePolicy's
    default `failoverOn`, and the only kinds a spec may list there. `stops_at_once`: never retried
    nor failed over, whatever a plan lists (the request itself is wrong, and retrying spends money).
    `counts_for_breaker`: says something about the adapter's health (a caller's bad request does not).
    `http_status`: the router service's answer. `run_outcome`: how the runner records a run that ends
    on it.
    """

    retryable: bool
    fails_over_by_default: bool
    stops_at_once: bool
    counts_for_breaker: bool
    http_status: int
    run_outcome: RunFailure

    @property
    def stops_run(self) -> bool:
        """Whether the run cannot usefully go on after a call that failed this way."""
        return self.run_outcome == "LimitExceeded"


def _rule(
    retryable: bool, failover: bool, stops: bool, breaker: bool, status: int, outcome: RunFailure
) -> ErrorRule:
    return ErrorRule(retryable, failover, stops, breaker, status, outcome)


# AllowanceExceeded answers 403, not 429: SDKs retry a 429 by themselves, and a spent allowance does
# not come back. Authentication answers 502: the router's own credentials were refused, which is not
# the caller's fault. SharedStoreUnavailable is retryable: the call was not sent, and may pass once
# the store of runs' allowances (Redis) answers again.
# fmt: off
ERROR_TABLE: Mapping[str, ErrorRule] = MappingProxyType({
    #                                               retry  failover stops  breaker status run outcome
    ErrorKind.RATE_LIMITED:                   _rule(True,  True,    False, True,   503,   "ModelFailed"),
    ErrorKind.OVERLOADED:                     _rule(True,  True,    False, True,   503,   "ModelFailed"),
    ErrorKind.TIMEOUT:                        _rule(True,  True,    False, True,   504,   "ModelFailed"),
    ErrorKind.CONNECTION:                     _rule(True,  True,    False, True,   502,   "ModelFailed"),
    ErrorKind.MALFORMED_RESPONSE:             _rule(True,  True,    False, True,   502,   "ModelFailed"),
    ErrorKind.INVALID_REQUEST:                _rule(False, False,   True,  False,  400,   "ModelFailed"),
    ErrorKind.AUTHENTICATION:                 _rule(False, False,   False, True,   502,   "ModelFailed"),
    ErrorKind.CONTENT_FILTERED:               _rule(False, False,   False, False,  400,   "ModelFailed"),
    ErrorKind.CONTEXT_TOO_LONG:               _rule(False, False,   False, False,  400,   "ModelFailed"),
    RouteErrorKind.ALLOWANCE_EXCEEDED:        _rule(False, False,   True,  False,  403,   "LimitExceeded"),
    RouteErrorKind.NO_ADAPTER_AVAILABLE:      _rule(False, False,   False, False,  503,   "ModelFailed"),
    RouteErrorKind.CIRCUIT_OPEN:              _rule(False, False,   False, False,  503,   "ModelFailed"),
    RouteErrorKind.SHARED_STORE_UNAVAILABLE:  _rule(True,  False,   False, False,  503,   "ModelFailed"),
})
# fmt: on

# A kind outside the table (a status the router answered without a kind): a failed call, no more.
UNCLASSIFIED = _rule(False, False, False, False, 502, "ModelFailed")


def error_rule(kind: str) -> ErrorRule:
    """The table's row for `kind`, or `UNCLASSIFIED` for a kind it does not know."""
    return ERROR_TABLE.get(kind, UNCLASSIFIED)


# The default of a RoutePolicy's `failoverOn`, in table order.
DEFAULT_FAILOVER_KINDS: tuple[ErrorKind, ...] = tuple(
    kind for kind in ErrorKind if ERROR_TABLE[kind].fails_over_by_default
)


class FailedCallError(Exception):
    """A model call that failed for good, under one of the table's kinds (an unknown kind is UNCLASSIFIED).

    What the failure means to the run (whether it stops, how it ends) is read from the table here, so
    that the router's and the runner's failures cannot disagree about it.
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason

    @property
    def run_outcome(self) -> RunFailure:
        """How the run ends after this failure (a `RunOutcome` value): ModelFailed or LimitExceeded."""
        return error_rule(self.kind).run_outcome

    @property
    def stops_run(self) -> bool:
        """Whether the run cannot usefully go on (its allowance is spent), as the error table says."""
        return error_rule(self.kind).stops_run


class AdapterError(Exception):
    """A failed model call, classified.

    `status_code` is the provider's HTTP status where there was one; `retry_after_seconds`
    carries the provider's Retry-After hint for rate limits. `usage` is set when the provider
    reported tokens for an answer that still failed (a refusal, a filtered answer): they were spent
    and the router meters them.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        provider: str,
        status_code: int | None = None,
        retry_after_seconds: float | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(f"{provider}: {kind.value}: {message}")
        self.kind = kind
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.retry_after_seconds = retry_after_seconds
        self.usage = usage

    @property
    def retryable(self) -> bool:
        """Whether this failure may pass on a retry or on another adapter."""
        return self.kind.retryable


class AdapterConfigError(ValueError):
    """An adapter cannot be built from its configuration (unknown provider, missing key or URL).

    Raised by `jesus_adapters.registry.build_adapter` before any call is made; the message names
    the provider, the model and the field at fault.
    """
