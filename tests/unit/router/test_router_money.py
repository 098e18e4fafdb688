"""The router's money and rate semantics, also against hostile and careless callers: client-side rate
limits (fail over or wait), calls larger than a rate bucket, usage far beyond its estimate, prompts
whose tokens a character count under-estimates, and providers that report more than the call's
reservation."""

from __future__ import annotations

import pytest
from tests.builders.chat import reply, request
from tests.builders.doubles import FakeAdapter, FakeClock

from jesus.logic.allowance import Allowance, CallPrice
from jesus.logic.routing import DEFAULT_FAILOVER_ON, RateLimit, RetryPolicy, RoutePlan
from jesus.router import ALLOWANCE_EXCEEDED, RoutedAdapter, RoutedStreamEnd, RouteError, Router, RunLedger
from jesus.router.http import route_error_response
from jesus_adapters.errors import ERROR_TABLE, ErrorKind
from jesus_adapters.estimate import estimate_input_tokens, input_tokens_upper_bound

PRICE = CallPrice(input_micros_per_mtok=3_000_000, output_micros_per_mtok=15_000_000)


def limited_router(
    limit: RateLimit, primary: FakeAdapter | None = None
) -> tuple[Router, FakeAdapter, FakeAdapter, FakeClock]:
    """A router whose primary adapter has `limit` and whose fallback has none."""
    clock = FakeClock()
    first = primary or FakeAdapter([reply("primary")])
    second = FakeAdapter([reply("fallback")])
    router = Router(
        {
            "primary": RoutedAdapter("primary", first, PRICE, rate_limit=limit),
            "fallback": RoutedAdapter("fallback", second, PRICE),
        },
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: 0.0,
    )
    return router, first, second, clock


def chain(failover_on: frozenset[str] = DEFAULT_FAILOVER_ON) -> RoutePlan:
    retry = RetryPolicy(max_retries=1, backoff_base_seconds=0.1, backoff_max_seconds=1.0)
    return RoutePlan(chain=("primary", "fallback"), failover_on=failover_on, retry=retry)


# --- rate limits -----------------------------------------------------------------------------------


async def test_a_client_side_rate_limit_fails_over_instead_of_waiting_long() -> None:
    router, first, _, _ = limited_router(RateLimit(requests_per_minute=1))
    ledger = RunLedger("run-a")
    assert (await router.complete(chain(), request(), ledger)).record.adapter == "primary"
    limited = await router.complete(chain(), request(), ledger)
    assert limited.record.adapter == "fallback"
    assert (limited.record.attempts[0].outcome, limited.record.attempts[0].error_kind) == (
        "skipped",
        "RateLimited",
    )
    assert len(first.received) == 1, "the limited call was never sent"
    assert router.breaker_state("primary").consecutive_failures == 0


async def test_a_chain_that_is_only_rate_limited_says_when_to_come_back() -> None:
    router, _, _, _ = limited_router(RateLimit(requests_per_minute=1))
    plan = RoutePlan(chain=("primary",), retry=RetryPolicy(max_retries=0))
    ledger = RunLedger("run-a")
    await router.complete(plan, request(), ledger)
    with pytest.raises(RouteError) as refused:
        await router.complete(plan, request(), ledger)
    assert refused.value.kind == "RateLimited"
    assert refused.value.retry_after_seconds == pytest.approx(60.0)
    response = route_error_response(refused.value)
    assert response.status_code == ERROR_TABLE[ErrorKind.RATE_LIMITED].http_status
    assert response.headers["retry-after"] == "60"


async def test_a_short_rate_limit_wait_is_retried_on_the_same_adapter() -> None:
    router, _, second, clock = limited_router(RateLimit(requests_per_minute=120))
    ledger = RunLedger("run-a")
    for _ in range(120):
        await router.complete(chain(), request(), ledger)
    waited = await router.complete(chain(), request(), ledger)
    assert waited.record.adapter == "primary"
    assert clock.slept == [pytest.approx(0.5)], "a slot frees every half second"
    assert not second.received


async def test_a_call_larger_than_the_whole_bucket_is_refused_at_once_and_names_the_limit() -> None:
    router, first, second, clock = limited_router(RateLimit(tokens_per_minute=100))
    big = request("x" * 1000)
    tokens = estimate_input_tokens(big)
    with pytest.raises(RouteError) as caught:
        await router.complete(chain(), big, RunLedger("run-a"))
    error = caught.value
    assert error.kind == ErrorKind.CONTEXT_TOO_LONG
    assert (
        f"a call of about {tokens} tokens is larger than the whole tokensPerMinute limit of primary (100)"
        in (error.reason)
    )
    # The error table decides: not retryable, not in the default failoverOn, and not the adapter's health.
    rule = ERROR_TABLE[ErrorKind.CONTEXT_TOO_LONG]
    assert not rule.retryable and not rule.fails_over_by_default and not rule.counts_for_breaker
    assert "ContextTooLong is not in failoverOn" in error.reason
    assert (first.received, second.received, clock.slept) == ([], [], [])
    assert error.record.attempts[0].outcome == "skipped"
    assert router.breaker_state("primary").consecutive_failures == 0


async def test_a_plan_that_fails_over_on_a_too_large_call_reaches_the_next_adapter() -> None:
    router, first, _, clock = limited_router(RateLimit(tokens_per_minute=100))
    routed = await router.complete(
        chain(DEFAULT_FAILOVER_ON | {ErrorKind.CONTEXT_TOO_LONG.value}),
        request("x" * 1000),
        RunLedger("run-a"),
    )
    assert routed.record.adapter == "fallback"
    assert not first.received
    assert clock.slept == []


async def test_usage_far_beyond_the_estimate_leaves_at_most_a_minute_of_debt() -> None:
    greedy = FakeAdapter([reply(input_tokens=10, output_tokens=10**9), reply("primary again")])
    router, _, second, clock = limited_router(RateLimit(tokens_per_minute=1000), greedy)
    ledger = RunLedger("run-a")
    await router.complete(chain(), request(), ledger)

    after = await router.complete(chain(), request(), ledger)

    # The bucket sits at one minute of debt: the next call of 4 tokens fits in (1000 + 4) / 1000 minutes,
    # too long for the policy's backoff, so it fails over, and says so honestly.
    assert after.record.adapter == "fallback"
    assert "the next call fits in 60.240s" in after.record.fallbacks[0].reason
    assert len(second.received) == 1
    clock.now += 60.24
    recovered = await router.complete(chain(), request(), ledger)
    assert recovered.record.adapter == "primary"


async def test_a_short_honest_wait_is_slept_and_then_the_call_fits() -> None:
    big, small = request("y" * 2000), request("z" * 400)
    exact = FakeAdapter([reply(input_tokens=503, output_tokens=0), reply("small")])
    router, _, second, clock = limited_router(RateLimit(tokens_per_minute=600), exact)
    assert (estimate_input_tokens(big), estimate_input_tokens(small)) == (503, 103)
    await router.complete(chain(), big, RunLedger("run-a"))

    answered = await router.complete(chain(), small, RunLedger("run-a"))

    # 97 tokens are left at 10 a second: the small call needs 6 more, 0.6 s, within the policy's backoff.
    assert answered.record.adapter == "primary"
    assert clock.slept == [pytest.approx(0.6)]
    assert not second.received


async def test_a_call_the_allowance_refuses_gives_its_rate_credits_back() -> None:
    limit = RateLimit(tokens_per_minute=estimate_input_tokens(request()))  # exactly one call a minute
    router, first, _, clock = limited_router(limit)
    with pytest.raises(RouteError) as caught:
        await router.complete(chain(), request(), RunLedger("poor", Allowance(max_tokens=10)))
    assert caught.value.kind == ALLOWANCE_EXCEEDED

    answered = await router.complete(chain(), request(), RunLedger("rich"))

    assert answered.record.adapter == "primary", "the refused call, never sent, took no credits"
    assert clock.slept == []
    assert len(first.received) == 1


# --- the allowance ---------------------------------------------------------------------------------

CHEAP = CallPrice(input_micros_per_mtok=100_000, output_micros_per_mtok=400_000)
EMOJI = "\N{SLIGHTLY SMILING FACE}" * 30  # 30 characters, 120 bytes, up to 120 tokens


async def test_an_allowance_of_20_micros_is_never_passed_by_a_prompt_characters_under_estimate() -> None:
    prompt = request(EMOJI, max_tokens=1000)
    bound = input_tokens_upper_bound(prompt)
    assert bound == 152  # 120 bytes + 32 tokens of template

    # The provider bills every byte as a token and every output token the call may produce.
    adapter = FakeAdapter([reply(input_tokens=bound, output_tokens=10)])
    router = Router({"primary": RoutedAdapter("primary", adapter, CHEAP)})
    ledger = RunLedger("run-a", Allowance(max_cost_micros=20))
    routed = await router.complete(RoutePlan(chain=("primary",)), prompt, ledger)

    # 152 input tokens cost at most 16 micros (15.2 rounded up); the 4 left buy 10 output tokens.
    assert adapter.received[0].max_tokens == 10
    assert routed.record.cost_micros == ledger.spent.cost_micros == 20
    assert routed.record.error is None
    with pytest.raises(RouteError) as caught:
        await router.complete(RoutePlan(chain=("primary",)), prompt, ledger)
    assert caught.value.kind == ALLOWANCE_EXCEEDED
    assert ledger.spent.cost_micros <= 20
    assert len(adapter.received) == 1


async def test_a_streamed_answer_beyond_its_reservation_is_charged_and_stops_the_run() -> None:
    adapter = FakeAdapter([reply("an answer", input_tokens=10_000, output_tokens=5)])
    router = Router({"primary": RoutedAdapter("primary", adapter, PRICE)})
    ledger = RunLedger("run-a", Allowance(max_tokens=100_000))
    events = [event async for event in router.stream(RoutePlan(chain=("primary",)), request(), ledger)]
    end = events[-1]
    assert isinstance(end, RoutedStreamEnd)
    assert end.record.error is not None
    assert "10000 input tokens where at most 34 were reserved" in end.record.error
    assert ledger.spent.tokens == 10_005
    with pytest.raises(RouteError) as caught:
        await router.complete(RoutePlan(chain=("primary",)), request(), ledger)
    assert caught.value.kind == ALLOWANCE_EXCEEDED
    assert "further calls refused" in caught.value.reason
    assert len(adapter.received) == 1


async def test_without_an_allowance_an_over_report_is_charged_but_refuses_nothing() -> None:
    adapter = FakeAdapter([reply(input_tokens=10_000, output_tokens=5)])
    router = Router({"primary": RoutedAdapter("primary", adapter, PRICE)})
    ledger = RunLedger("run-a")
    first = await router.complete(RoutePlan(chain=("primary",)), request(), ledger)
    await router.complete(RoutePlan(chain=("primary",)), request(), ledger)
    assert first.record.error is None
    assert ledger.overrun is None
    assert ledger.spent.tokens == 20_010
