"""Table-driven tests of the pure routing decisions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.builders.adapters import scripted_adapter
from tests.builders.routes import route_policy

from jesus.api import ModelAdapter, RoutePolicy
from jesus.logic.allowance import CallPrice
from jesus.logic.routing import (
    BreakerConfig,
    BreakerState,
    BreakerStatus,
    ErrorAction,
    RateLimit,
    RateState,
    RetryPolicy,
    RoutePlan,
    RouteUnavailableError,
    backoff_seconds,
    breaker_admit,
    breaker_on_failure,
    breaker_on_success,
    breaker_release_probe,
    decide_on_error,
    plan_from_route_policy,
    rate_admit,
    rate_charge,
    rate_too_large,
)


def plan(
    *,
    max_retries: int = 1,
    failover_on: frozenset[str] = frozenset({"Overloaded", "Timeout", "Connection", "RateLimited"}),
    deadline: float | None = None,
    backoff_max: float = 2.0,
) -> RoutePlan:
    return RoutePlan(
        chain=("primary", "fallback"),
        failover_on=failover_on,
        retry=RetryPolicy(max_retries=max_retries, backoff_base_seconds=0.1, backoff_max_seconds=backoff_max),
        failover_deadline_seconds=deadline,
    )


@pytest.mark.parametrize(
    ("kind", "retryable", "retries_done", "the_plan", "retry_after", "elapsed", "expected"),
    [
        ("Overloaded", True, 0, plan(), None, 0.0, ErrorAction.RETRY),
        ("Overloaded", True, 1, plan(), None, 0.0, ErrorAction.FAIL_OVER),
        ("Overloaded", True, 0, plan(max_retries=0), None, 0.0, ErrorAction.FAIL_OVER),
        ("Timeout", True, 3, plan(max_retries=3), None, 0.0, ErrorAction.FAIL_OVER),
        ("Connection", True, 0, plan(max_retries=0, failover_on=frozenset()), None, 0.0, ErrorAction.STOP),
        (
            "InvalidRequest",
            False,
            0,
            plan(failover_on=frozenset({"InvalidRequest"})),
            None,
            0,
            ErrorAction.STOP,
        ),
        ("Authentication", False, 0, plan(), None, 0.0, ErrorAction.STOP),
        (
            "Authentication",
            False,
            0,
            plan(failover_on=frozenset({"Authentication"})),
            None,
            0,
            ErrorAction.FAIL_OVER,
        ),
        ("RateLimited", True, 0, plan(backoff_max=2.0), 30.0, 0.0, ErrorAction.FAIL_OVER),
        ("RateLimited", True, 0, plan(backoff_max=2.0), 1.0, 0.0, ErrorAction.RETRY),
        ("Overloaded", True, 0, plan(deadline=1.0), None, 1.5, ErrorAction.STOP),
        ("Overloaded", True, 0, plan(deadline=1.0), None, 0.5, ErrorAction.RETRY),
    ],
)
def test_decide_on_error(
    kind: str,
    retryable: bool,
    retries_done: int,
    the_plan: RoutePlan,
    retry_after: float | None,
    elapsed: float,
    expected: ErrorAction,
) -> None:
    decision = decide_on_error(
        kind,
        retryable=retryable,
        retries_done=retries_done,
        plan=the_plan,
        retry_after_seconds=retry_after,
        elapsed_seconds=elapsed,
    )
    assert decision.action is expected
    assert decision.reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chain": ()}, "at least one adapter"),
        ({"chain": ("a", "a")}, "twice"),
        ({"chain": ("a",), "attempt_timeout_seconds": 0}, "positive"),
        ({"chain": ("a",), "retry": RetryPolicy(max_retries=-1)}, "negative"),
        ({"chain": ("a",), "prices": {"b": CallPrice()}}, "outside the chain"),
    ],
)
def test_route_plan_rejects_bad_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RoutePlan(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("retries_done", "rand", "retry_after", "expected"),
    [
        (0, 0.0, None, 0.05),  # half of the 0.1 s step, no jitter drawn
        (0, 1.0, None, 0.1),
        (1, 0.5, None, 0.15),  # step 0.2: 0.1 + 0.05
        (10, 0.0, None, 1.0),  # capped at the 2 s maximum, then halved
        (10, 1.0, None, 2.0),
        (0, 0.0, 0.5, 0.5),  # Retry-After is a floor
        (0, 0.0, 10.0, 2.0),  # ... but never above the maximum
    ],
)
def test_backoff_seconds(retries_done: int, rand: float, retry_after: float | None, expected: float) -> None:
    policy = RetryPolicy(max_retries=5, backoff_base_seconds=0.1, backoff_max_seconds=2.0)
    assert backoff_seconds(retries_done, policy, lambda: rand, retry_after) == pytest.approx(expected)


@given(retries=st.integers(0, 30), rand=st.floats(0, 1, exclude_max=True))
def test_backoff_stays_within_its_step(retries: int, rand: float) -> None:
    policy = RetryPolicy(backoff_base_seconds=0.05, backoff_max_seconds=3.0)
    step = min(3.0, 0.05 * 2**retries)
    delay = backoff_seconds(retries, policy, lambda: rand)
    assert step / 2 <= delay <= step


CONFIG = BreakerConfig(failure_threshold=2, open_seconds=10.0)
OPEN_AT_100 = BreakerState(BreakerStatus.OPEN, 2, opened_at=100.0)
HALF_OPEN_PROBING = BreakerState(BreakerStatus.HALF_OPEN, 2, opened_at=100.0, probe_in_flight=True)


@pytest.mark.parametrize(
    ("state", "now", "admitted", "status_after"),
    [
        (BreakerState(), 0.0, True, BreakerStatus.CLOSED),
        (OPEN_AT_100, 105.0, False, BreakerStatus.OPEN),
        (OPEN_AT_100, 110.0, True, BreakerStatus.HALF_OPEN),
        (HALF_OPEN_PROBING, 111.0, False, BreakerStatus.HALF_OPEN),
        (breaker_release_probe(HALF_OPEN_PROBING), 111.0, True, BreakerStatus.HALF_OPEN),
    ],
)
def test_breaker_admit(state: BreakerState, now: float, admitted: bool, status_after: BreakerStatus) -> None:
    allowed, after = breaker_admit(state, CONFIG, now)
    assert allowed is admitted
    assert after.status is status_after


@pytest.mark.parametrize(
    ("state", "kind", "status_after", "failures_after"),
    [
        (BreakerState(), "Overloaded", BreakerStatus.CLOSED, 1),
        (BreakerState(consecutive_failures=1), "Timeout", BreakerStatus.OPEN, 2),
        (BreakerState(consecutive_failures=1), "InvalidRequest", BreakerStatus.CLOSED, 0),
        (BreakerState(consecutive_failures=1), "ContextTooLong", BreakerStatus.CLOSED, 0),
        (HALF_OPEN_PROBING, "Connection", BreakerStatus.OPEN, 3),
    ],
)
def test_breaker_on_failure(
    state: BreakerState, kind: str, status_after: BreakerStatus, failures_after: int
) -> None:
    after = breaker_on_failure(state, CONFIG, 200.0, kind)
    assert after.status is status_after
    assert after.consecutive_failures == failures_after
    if status_after is BreakerStatus.OPEN:
        assert after.opened_at == 200.0


def test_breaker_full_cycle() -> None:
    state = BreakerState()
    for now in (1.0, 2.0):
        allowed, state = breaker_admit(state, CONFIG, now)
        assert allowed
        state = breaker_on_failure(state, CONFIG, now, "Overloaded")
    assert state.status is BreakerStatus.OPEN
    assert not breaker_admit(state, CONFIG, 5.0)[0]
    allowed, state = breaker_admit(state, CONFIG, 12.0)
    assert allowed
    assert state.status is BreakerStatus.HALF_OPEN
    assert not breaker_admit(state, CONFIG, 12.1)[0], "only one probe at a time"
    state = breaker_on_success(state)
    assert state == BreakerState()


def _adapters(*objects: dict[str, object]) -> dict[str, ModelAdapter]:
    return {str(o["metadata"]["name"]): ModelAdapter.model_validate(o) for o in objects}  # type: ignore[index]


def test_a_route_policy_becomes_a_plan() -> None:
    policy = route_policy(adapters=("first", "second"))
    policy["spec"] |= {
        "failoverOn": ["Timeout", "Overloaded"],
        "attemptTimeoutSeconds": 30,
        "retries": {"maxAttempts": 3, "initialBackoffMilliseconds": 200, "maxBackoffMilliseconds": 1000},
        "failoverDeadlineSeconds": 90,
    }
    adapters = _adapters(scripted_adapter("first"), scripted_adapter("second"))
    route_plan, skipped = plan_from_route_policy(
        RoutePolicy.model_validate(policy).spec, classification="internal", adapters=adapters
    )
    assert route_plan == RoutePlan(
        chain=("first", "second"),
        failover_on=frozenset({"Timeout", "Overloaded"}),
        attempt_timeout_seconds=30.0,
        retry=RetryPolicy(max_retries=2, backoff_base_seconds=0.2, backoff_max_seconds=1.0),
        failover_deadline_seconds=90.0,
    )
    assert skipped == []


def test_adapters_that_may_not_see_the_data_or_are_missing_leave_the_chain() -> None:
    policy = RoutePolicy.model_validate(route_policy(adapters=("public-only", "ghost", "internal")))
    adapters = _adapters(
        scripted_adapter("public-only", classifications=("public",)), scripted_adapter("internal")
    )
    route_plan, skipped = plan_from_route_policy(policy.spec, classification="internal", adapters=adapters)
    assert route_plan.chain == ("internal",)
    assert len(skipped) == 2
    assert "may not receive internal data" in skipped[0]
    assert "ghost does not exist" in skipped[1]


def test_a_route_with_no_eligible_adapter_is_unavailable() -> None:
    policy = RoutePolicy.model_validate(route_policy(adapters=("public-only",)))
    adapters = _adapters(scripted_adapter("public-only", classifications=("public",)))
    with pytest.raises(RouteUnavailableError, match="may not receive confidential data"):
        plan_from_route_policy(policy.spec, classification="confidential", adapters=adapters)


MINUTE = RateLimit(requests_per_minute=60, tokens_per_minute=6000)


@pytest.mark.parametrize(
    ("state", "now", "tokens", "expected_wait"),
    [
        (RateState(), 0.0, 100, 0.0),  # a fresh bucket is full
        (RateState(requests=0.0, tokens=6000.0, updated_at=0.0), 0.0, 100, 1.0),  # one request a second
        (RateState(requests=0.0, tokens=6000.0, updated_at=0.0), 1.0, 100, 0.0),  # refilled after a second
        (RateState(requests=10.0, tokens=0.0, updated_at=0.0), 0.0, 500, 5.0),  # 100 tokens a second
        (RateState(requests=10.0, tokens=-200.0, updated_at=0.0), 0.0, 100, 3.0),  # overdrawn by a call
        (RateState(requests=10.0, tokens=6000.0, updated_at=0.0), 0.0, 6000, 0.0),  # a whole bucket fits
        (RateState(requests=10.0, tokens=6000.0, updated_at=0.0), 0.0, 6001, math.inf),  # never fits
        (RateState(requests=10.0, tokens=0.0, updated_at=0.0), 0.0, 1, 0.01),  # 10 ms, not 0.000
        (RateState(requests=10.0, tokens=0.0, updated_at=0.0), 0.0, 7, 0.07),  # 70 ms
        (RateState(requests=0.9995, tokens=6000.0, updated_at=0.0), 0.0, 1, 0.001),  # rounded up, never to 0
    ],
)
def test_rate_admit(state: RateState, now: float, tokens: int, expected_wait: float) -> None:
    wait, _ = rate_admit(state, MINUTE, now, tokens)
    assert wait == pytest.approx(expected_wait)


def test_rate_admit_takes_credits_and_rate_charge_overdraws_by_at_most_a_minute() -> None:
    wait, state = rate_admit(RateState(), MINUTE, 10.0, 1000)
    assert wait == 0
    assert (state.requests, state.tokens) == (59, 5000)
    state = rate_charge(state, MINUTE, 5500)
    assert state.tokens == -500
    assert rate_admit(state, MINUTE, 10.0, 1)[0] > 0
    assert rate_charge(state, MINUTE, 10**12).tokens == -6000, "never more than one minute of debt"
    assert rate_charge(state, MINUTE, -(10**12)).tokens == 6000, "a refund never overfills the bucket"
    unlimited = RateLimit()
    assert rate_admit(RateState(), unlimited, 0.0, 10**9) == (0.0, RateState(0.0, 0.0, 0.0))
    assert rate_charge(state, unlimited, 10**9) == state


def test_a_call_larger_than_the_bucket_is_too_large_and_waits_forever() -> None:
    assert rate_too_large(MINUTE, 6001)
    assert not rate_too_large(MINUTE, 6000)
    assert not rate_too_large(RateLimit(requests_per_minute=1), 10**9)
    wait, state = rate_admit(RateState(), MINUTE, 0.0, 6001)
    assert wait == math.inf
    assert state.tokens == 6000, "nothing was taken"


@given(
    tokens_per_minute=st.integers(1, 1_000_000),
    charges=st.lists(st.integers(-(10**9), 10**12), max_size=20),
    size=st.floats(0.0, 1.0),
)
def test_whatever_calls_used_the_adapter_takes_a_call_again_within_two_minutes(
    tokens_per_minute: int, charges: list[int], size: float
) -> None:
    limit = RateLimit(requests_per_minute=None, tokens_per_minute=tokens_per_minute)
    _, state = rate_admit(RateState(), limit, 0.0, tokens_per_minute)
    for charge in charges:
        state = rate_charge(state, limit, charge)
        assert -tokens_per_minute <= state.tokens <= tokens_per_minute
    call = int(size * tokens_per_minute)
    wait, _ = rate_admit(state, limit, 0.0, call)
    assert wait <= 120.001
    # The wait is honest: after it, the call is admitted.
    assert rate_admit(state, limit, wait, call)[0] == 0
