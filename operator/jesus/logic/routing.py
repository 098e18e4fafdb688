"""Pure routing decisions: the fallback chain, retries with backoff, circuit breakers, rate limits.

A run's allowance and the price of a call are `jesus.logic.allowance`.

Nothing here does I/O or reads a clock or a random source by itself: the router passes `now` and
`rand` in, so every decision is a function of its arguments and tests can tabulate them.

Error kinds arrive as strings (the values of `jesus_adapters.errors.ErrorKind`, which RoutePolicy specs use
in `failoverOn`); what each kind means comes from the one error table, `jesus_adapters.errors.ERROR_TABLE`
(an SDK-free module, the only part of the adapter package the pure core imports).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from jesus.api.modeladapter import ModelAdapter
from jesus.api.routepolicy import RoutePolicySpec
from jesus.logic.allowance import CallPrice
from jesus_adapters.errors import DEFAULT_FAILOVER_KINDS, ERROR_TABLE

# The caller's request is wrong; another adapter would reject it too, and retrying spends money.
NEVER_FAIL_OVER: frozenset[str] = frozenset(kind for kind, rule in ERROR_TABLE.items() if rule.stops_at_once)

# Failures that say something about the adapter's health and so count towards opening its breaker.
# An invalid request, a content filter or a too-long context are the caller's problem, not the adapter's.
BREAKER_FAILURES: frozenset[str] = frozenset(
    kind for kind, rule in ERROR_TABLE.items() if rule.counts_for_breaker
)

DEFAULT_FAILOVER_ON: frozenset[str] = frozenset(DEFAULT_FAILOVER_KINDS)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries on one adapter: how many, and the exponential backoff between them."""

    max_retries: int = 1
    backoff_base_seconds: float = 0.05
    backoff_max_seconds: float = 2.0
    multiplier: float = 2.0


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """A RoutePolicy turned into what the router walks: adapters in order and how to treat errors.

    `prices` pins what each adapter of the chain costs for this run (the prices it was admitted with,
    ADR 16); an adapter without one is charged its current price.
    """

    chain: tuple[str, ...]
    failover_on: frozenset[str] = DEFAULT_FAILOVER_ON
    attempt_timeout_seconds: float = 60.0
    retry: RetryPolicy = RetryPolicy()
    failover_deadline_seconds: float | None = None
    prices: Mapping[str, CallPrice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.chain:
            raise ValueError("a route plan needs at least one adapter in its chain")
        if len(set(self.chain)) != len(self.chain):
            raise ValueError(f"the chain names an adapter twice: {list(self.chain)}")
        if self.attempt_timeout_seconds <= 0:
            raise ValueError("attempt_timeout_seconds must be positive")
        if self.retry.max_retries < 0:
            raise ValueError("max_retries must not be negative")
        unknown = set(self.prices) - set(self.chain)
        if unknown:
            raise ValueError(f"prices for adapters outside the chain: {sorted(unknown)}")


class RouteUnavailableError(ValueError):
    """A RoutePolicy leaves no adapter that may serve the run."""


def plan_from_route_policy(
    spec: RoutePolicySpec, *, classification: str, adapters: Mapping[str, ModelAdapter]
) -> tuple[RoutePlan, list[str]]:
    """Turn a RoutePolicy into the plan the router walks for one run, and say what was left out.

    Adapters that are not among `adapters` or may not receive the run's data classification are
    dropped from the chain (each with a sentence in the returned list); RouteUnavailableError when none
    remains. Retries' `maxAttempts` counts the first attempt, so one attempt means no retry.
    """
    chain: list[str] = []
    skipped: list[str] = []
    for entry in spec.chain:
        adapter = adapters.get(entry.adapter_ref)
        if adapter is None:
            skipped.append(f"ModelAdapter {entry.adapter_ref} does not exist")
        elif classification not in {c.value for c in adapter.spec.data_classifications}:
            allowed = ", ".join(c.value for c in adapter.spec.data_classifications)
            skipped.append(
                f"ModelAdapter {entry.adapter_ref} may not receive {classification} data (only {allowed})"
            )
        else:
            chain.append(entry.adapter_ref)
    if not chain:
        raise RouteUnavailableError("no adapter in the chain may serve this run: " + "; ".join(skipped))
    retries = spec.retries
    plan = RoutePlan(
        chain=tuple(chain),
        failover_on=frozenset(e.value for e in spec.failover_on),
        attempt_timeout_seconds=float(spec.attempt_timeout_seconds),
        retry=RetryPolicy(
            max_retries=retries.max_attempts - 1,
            backoff_base_seconds=retries.initial_backoff_milliseconds / 1000,
            backoff_max_seconds=retries.max_backoff_milliseconds / 1000,
        ),
        failover_deadline_seconds=(
            float(spec.failover_deadline_seconds) if spec.failover_deadline_seconds is not None else None
        ),
    )
    return plan, skipped


class ErrorAction(enum.StrEnum):
    """What to do after a failed attempt."""

    RETRY = "Retry"  # same adapter again, after a backoff
    FAIL_OVER = "FailOver"  # next adapter in the chain
    STOP = "Stop"  # give up: the call fails with this error


@dataclass(frozen=True, slots=True)
class ErrorDecision:
    """The action after a failure and why, in words that go into the call record."""

    action: ErrorAction
    reason: str


def decide_on_error(
    kind: str,
    *,
    retryable: bool,
    retries_done: int,
    plan: RoutePlan,
    retry_after_seconds: float | None = None,
    elapsed_seconds: float = 0.0,
) -> ErrorDecision:
    """Decide whether a failed attempt is retried, fails over, or ends the call.

    `retries_done` counts retries already made on the current adapter. A retry whose Retry-After hint
    exceeds the policy's maximum backoff fails over instead: another adapter answers sooner. Past the
    failover deadline nothing is tried any more.
    """
    if kind in NEVER_FAIL_OVER:
        return ErrorDecision(ErrorAction.STOP, f"{kind} is never retried or failed over")
    deadline = plan.failover_deadline_seconds
    if deadline is not None and elapsed_seconds >= deadline:
        return ErrorDecision(
            ErrorAction.STOP, f"failover deadline of {deadline:g}s passed after {elapsed_seconds:.3f}s"
        )
    too_long_to_wait = (
        retry_after_seconds is not None and retry_after_seconds > plan.retry.backoff_max_seconds
    )
    if retryable and retries_done < plan.retry.max_retries and not too_long_to_wait:
        return ErrorDecision(
            ErrorAction.RETRY, f"{kind} is retryable ({retries_done + 1}/{plan.retry.max_retries})"
        )
    if kind in plan.failover_on:
        return ErrorDecision(ErrorAction.FAIL_OVER, f"{kind} is in failoverOn")
    return ErrorDecision(ErrorAction.STOP, f"{kind} is not in failoverOn")


def backoff_seconds(
    retries_done: int,
    policy: RetryPolicy,
    rand: Callable[[], float],
    retry_after_seconds: float | None = None,
) -> float:
    """Seconds to wait before retry number `retries_done + 1`: exponential with equal jitter.

    Half the exponential step is fixed and half is random (`rand()` in [0, 1)), so concurrent callers
    spread out without any of them retrying at once. A provider's Retry-After hint is a floor.
    """
    step = min(policy.backoff_max_seconds, policy.backoff_base_seconds * policy.multiplier**retries_done)
    delay = step / 2 + (step / 2) * rand()
    if retry_after_seconds is not None:
        delay = max(delay, retry_after_seconds)
    return min(delay, policy.backoff_max_seconds)


# --- circuit breaker -------------------------------------------------------------------------------


class BreakerStatus(enum.StrEnum):
    """The three states of a circuit breaker."""

    CLOSED = "Closed"  # calls flow
    OPEN = "Open"  # calls are skipped until the open period ends
    HALF_OPEN = "HalfOpen"  # one probe call is let through; its outcome closes or reopens


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """When a breaker opens (consecutive failures) and for how long it stays open."""

    failure_threshold: int = 3
    open_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class BreakerState:
    """One adapter's breaker. Immutable: every transition returns a new state."""

    status: BreakerStatus = BreakerStatus.CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    probe_in_flight: bool = False


def breaker_admit(state: BreakerState, config: BreakerConfig, now: float) -> tuple[bool, BreakerState]:
    """Whether a call may go to the adapter now, and the breaker's state after admitting it."""
    if state.status is BreakerStatus.CLOSED:
        return True, state
    if state.status is BreakerStatus.OPEN:
        if now - state.opened_at >= config.open_seconds:
            return True, replace(state, status=BreakerStatus.HALF_OPEN, probe_in_flight=True)
        return False, state
    if state.probe_in_flight:
        return False, state
    return True, replace(state, probe_in_flight=True)


def breaker_on_success(state: BreakerState) -> BreakerState:
    """The adapter answered: the breaker closes and forgets past failures."""
    del state  # every success leads to the same state; the argument keeps call sites uniform
    return BreakerState()


def breaker_release_probe(state: BreakerState) -> BreakerState:
    """A probe ended without an outcome (the call was cancelled): let the next call probe instead."""
    return replace(state, probe_in_flight=False)


def breaker_on_failure(state: BreakerState, config: BreakerConfig, now: float, kind: str) -> BreakerState:
    """The adapter failed with `kind`: count it, and open the breaker at the threshold or on a failed probe.

    Failures that are the caller's fault (see `BREAKER_FAILURES`) prove the adapter is alive, so they
    count as a success.
    """
    if kind not in BREAKER_FAILURES:
        return breaker_on_success(state)
    if state.status is BreakerStatus.HALF_OPEN:
        return BreakerState(BreakerStatus.OPEN, state.consecutive_failures + 1, opened_at=now)
    failures = state.consecutive_failures + 1
    if failures >= config.failure_threshold:
        return BreakerState(BreakerStatus.OPEN, failures, opened_at=now)
    return replace(state, consecutive_failures=failures)


# --- client-side rate limits ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A ModelAdapter's limits per minute; `None` means no limit on that axis."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class RateState:
    """Token buckets of one adapter: request and token credits, refilled continuously.

    `updated_at is None` means never used: both buckets start full.
    """

    requests: float = 0.0
    tokens: float = 0.0
    updated_at: float | None = None


def _refilled(state: RateState, limit: RateLimit, now: float) -> RateState:
    if state.updated_at is None:
        return RateState(float(limit.requests_per_minute or 0), float(limit.tokens_per_minute or 0), now)
    elapsed = max(0.0, now - state.updated_at)
    requests, tokens = state.requests, state.tokens
    if limit.requests_per_minute is not None:
        requests = min(float(limit.requests_per_minute), requests + elapsed * limit.requests_per_minute / 60)
    if limit.tokens_per_minute is not None:
        tokens = min(float(limit.tokens_per_minute), tokens + elapsed * limit.tokens_per_minute / 60)
    return RateState(requests, tokens, now)


def rate_too_large(limit: RateLimit, tokens: int) -> bool:
    """Whether a call of about `tokens` tokens can never fit the token bucket: it is larger than a whole
    minute's worth. Waiting does not help such a call, so the router refuses it rather than letting it
    wait for a full bucket and then overdraw it."""
    return limit.tokens_per_minute is not None and tokens > limit.tokens_per_minute


def _whole_milliseconds(seconds: float) -> float:
    # A wait rounded down would wake the caller a moment too early, to be told to wait again; the
    # tolerance keeps float noise (0.07 * 1000 = 70.00000000000001) from adding a millisecond.
    return math.ceil(seconds * 1000 - 1e-6) / 1000


def rate_admit(state: RateState, limit: RateLimit, now: float, tokens: int) -> tuple[float, RateState]:
    """Whether a call of about `tokens` tokens may go now: (0, state after taking its credits), or
    (seconds until it may, the refilled state).

    The wait is what the buckets need to refill for this call, rounded up to the millisecond, so a
    caller that sleeps it is admitted (unless others took the credits meanwhile). A call that can never
    fit (`rate_too_large`) waits forever (`math.inf`): callers refuse it first.
    """
    current = _refilled(state, limit, now)
    if rate_too_large(limit, tokens):
        return math.inf, current
    wait = 0.0
    if limit.requests_per_minute is not None and current.requests < 1:
        wait = max(wait, (1 - current.requests) * 60 / limit.requests_per_minute)
    if limit.tokens_per_minute is not None and current.tokens < tokens:
        wait = max(wait, (tokens - current.tokens) * 60 / limit.tokens_per_minute)
    if wait > 0:
        return _whole_milliseconds(wait), current
    return 0.0, replace(
        current,
        requests=current.requests - (1 if limit.requests_per_minute is not None else 0),
        tokens=current.tokens - (tokens if limit.tokens_per_minute is not None else 0),
    )


def rate_charge(state: RateState, limit: RateLimit, tokens: int) -> RateState:
    """Take `tokens` more from the token bucket (what a call used beyond its admission estimate), or give
    them back when `tokens` is negative (the estimate was high, or the call was never sent).

    The bucket stays between one minute's worth of debt and a full bucket: whatever a call turned out
    to use, the adapter takes new calls again within two minutes.
    """
    if limit.tokens_per_minute is None or tokens == 0:
        return state
    minute = float(limit.tokens_per_minute)
    return replace(state, tokens=max(-minute, min(minute, state.tokens - tokens)))
