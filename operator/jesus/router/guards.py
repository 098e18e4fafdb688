"""The per-adapter guards a router keeps across runs: circuit breakers and client-side rate limits.

The decisions are the pure functions of `jesus.logic.routing`; this class only holds each adapter's
current state and the clock they are asked at.
"""

from __future__ import annotations

from collections.abc import Callable

from jesus.logic.routing import (
    BreakerConfig,
    BreakerState,
    RateState,
    breaker_admit,
    breaker_on_failure,
    breaker_on_success,
    breaker_release_probe,
    rate_admit,
    rate_charge,
    rate_too_large,
)
from jesus.router.routed import RoutedAdapter
from jesus_adapters.errors import AdapterError, ErrorKind


class AdapterGuards:
    """Each adapter's breaker and rate state, shared by every run of a process."""

    def __init__(self, config: BreakerConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self._clock = clock
        self._breakers: dict[str, BreakerState] = {}
        self._rates: dict[str, RateState] = {}

    def breaker_state(self, adapter: str) -> BreakerState:
        """The current breaker state of one adapter."""
        return self._breakers.get(adapter, BreakerState())

    def admit(self, adapter: str) -> bool:
        """Whether the breaker lets a call to `adapter` go now (a half-open breaker lets one probe)."""
        admitted, state = breaker_admit(self.breaker_state(adapter), self.config, self._clock())
        self._breakers[adapter] = state
        return admitted

    def not_sent(self, adapter: str) -> None:
        """The admitted call was not sent after all: a probe it held is free again."""
        self._breakers[adapter] = breaker_release_probe(self.breaker_state(adapter))

    def failed(self, adapter: str, kind: str, now: float) -> None:
        """A call to `adapter` failed with `kind` at `now` (counted if the error table says so)."""
        self._breakers[adapter] = breaker_on_failure(self.breaker_state(adapter), self.config, now, kind)

    def succeeded(self, adapter: str) -> None:
        """A call to `adapter` was answered."""
        self._breakers[adapter] = breaker_on_success(self.breaker_state(adapter))

    def rate_limited(self, routed: RoutedAdapter, estimated_tokens: int) -> AdapterError | None:
        """The adapter's client-side rate limit for a call of about `estimated_tokens` tokens: None when
        it may go (its credits are taken), else why not.

        A call larger than the whole `tokensPerMinute` bucket is `ContextTooLong`: too big for this
        adapter, now and later, so the error table neither retries it nor fails it over by default. A call
        that fits later is `RateLimited`, with the honest wait as its Retry-After.
        """
        limit = routed.rate_limit
        if limit is None:
            return None
        if rate_too_large(limit, estimated_tokens):
            return AdapterError(
                ErrorKind.CONTEXT_TOO_LONG,
                f"a call of about {estimated_tokens} tokens is larger than the whole tokensPerMinute "
                f"limit of {routed.name} ({limit.tokens_per_minute}); it can never be sent to this adapter",
                provider=routed.name,
            )
        wait, state = rate_admit(
            self._rates.get(routed.name, RateState()), limit, self._clock(), estimated_tokens
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

    def correct_estimate(self, routed: RoutedAdapter, extra_tokens: int) -> None:
        """Charge the rate limit for tokens the admission estimate missed, or refund what it took beyond
        use (a negative `extra_tokens`; a call admitted but never sent refunds its whole estimate)."""
        if routed.rate_limit is not None and routed.name in self._rates:
            self._rates[routed.name] = rate_charge(self._rates[routed.name], routed.rate_limit, extra_tokens)
