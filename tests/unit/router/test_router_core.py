"""The in-process router against adapters with scripted outcomes: fallback, retries, breaker, allowance."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry
from tests.builders.chat import failure, reply, request
from tests.builders.doubles import BREAK_MID_STREAM, HANG, FakeAdapter, FakeClock, Step

from jesus.logic.allowance import Allowance, CallPrice, Spend
from jesus.logic.routing import BreakerConfig, BreakerStatus, RetryPolicy, RoutePlan
from jesus.router import (
    ALLOWANCE_EXCEEDED,
    NO_ADAPTER_AVAILABLE,
    RoutedAdapter,
    RoutedStreamEnd,
    RouteError,
    Router,
    RouterMetrics,
    RunLedger,
)
from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.estimate import input_tokens_upper_bound
from jesus_adapters.types import ChatRequest, ChatResponse, TextDelta, Usage

PRICE = CallPrice(input_micros_per_mtok=3_000_000, output_micros_per_mtok=15_000_000)


def build_router(
    primary: list[Step], fallback: list[Step] | None = None, *, breaker: BreakerConfig | None = None
) -> tuple[Router, FakeAdapter, FakeAdapter, FakeClock, RouterMetrics]:
    clock = FakeClock()
    first = FakeAdapter(primary)
    second = FakeAdapter(fallback or [reply("from fallback")])
    metrics = RouterMetrics(CollectorRegistry())
    router = Router(
        {
            "primary": RoutedAdapter("primary", first, PRICE),
            "fallback": RoutedAdapter("fallback", second, PRICE),
        },
        breaker=breaker,
        metrics=metrics,
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: 0.5,
    )
    return router, first, second, clock, metrics


def plan(max_retries: int = 1, **kwargs: object) -> RoutePlan:
    return RoutePlan(
        chain=("primary", "fallback"),
        retry=RetryPolicy(max_retries=max_retries, backoff_base_seconds=0.1, backoff_max_seconds=1.0),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_the_first_adapter_answers_and_the_call_is_metered() -> None:
    router, _, second, _, metrics = build_router([reply(input_tokens=1000, output_tokens=200)])
    ledger = RunLedger("run-a")
    routed = await router.complete(plan(), request(), ledger)
    assert routed.response.content == "hello there"
    record = routed.record
    assert (record.adapter, record.outcome, record.input_tokens, record.output_tokens) == (
        "primary",
        "ok",
        1000,
        200,
    )
    assert record.cost_micros == (1000 * 3_000_000 + 200 * 15_000_000) // 1_000_000
    assert [a.outcome for a in record.attempts] == ["ok"]
    assert record.fallbacks == []
    assert ledger.spent.tokens == 1200
    assert ledger.spent.cost_micros == record.cost_micros
    assert ledger.reserved.tokens == 0, "the reservation is released once the call ends"
    assert not hasattr(ledger, "calls"), "the ledger keeps sums, not every call's record"
    assert not second.received
    assert (
        metrics.registry.get_sample_value(
            "jesus_router_calls_total", {"adapter": "primary", "provider": "fake", "outcome": "ok"}
        )
        == 1
    )
    assert (
        metrics.registry.get_sample_value(
            "jesus_router_cost_micros_total", {"adapter": "primary", "provider": "fake"}
        )
        == record.cost_micros
    )


async def test_a_retryable_error_is_retried_after_a_jittered_backoff() -> None:
    router, first, second, clock, _ = build_router([failure(ErrorKind.OVERLOADED), reply()])
    routed = await router.complete(plan(max_retries=2), request(), RunLedger("run-a"))
    assert routed.record.adapter == "primary"
    assert [a.outcome for a in routed.record.attempts] == ["error", "ok"]
    assert clock.slept == [pytest.approx(0.075)]  # step 0.1: half fixed + half * rand 0.5
    assert len(first.received) == 2
    assert not second.received


@pytest.mark.parametrize(
    "primary_failure",
    [failure(ErrorKind.OVERLOADED), failure(ErrorKind.RATE_LIMITED), failure(ErrorKind.CONNECTION)],
)
async def test_exhausted_retries_fail_over_to_the_next_adapter(primary_failure: Exception) -> None:
    router, first, _, _, metrics = build_router([primary_failure])
    routed = await router.complete(plan(max_retries=1), request(), RunLedger("run-a"))
    record = routed.record
    assert record.adapter == "fallback"
    assert routed.response.content == "from fallback"
    assert [(a.adapter, a.outcome) for a in record.attempts] == [
        ("primary", "error"),
        ("primary", "error"),
        ("fallback", "ok"),
    ]
    assert [(f.from_adapter, f.to_adapter) for f in record.fallbacks] == [("primary", "fallback")]
    assert isinstance(primary_failure, AdapterError)
    assert record.to_dict()["fallbacks"][0]["errorClass"] == primary_failure.kind.value
    assert len(first.received) == 2
    assert (
        metrics.registry.get_sample_value(
            "jesus_router_fallbacks_total", {"from_adapter": "primary", "to_adapter": "fallback"}
        )
        == 1
    )


async def test_an_invalid_request_neither_retries_nor_fails_over() -> None:
    router, first, second, _, _ = build_router([failure(ErrorKind.INVALID_REQUEST)])
    ledger = RunLedger("run-a")
    with pytest.raises(RouteError) as caught:
        await router.complete(plan(max_retries=3), request(), ledger)
    assert caught.value.kind == "InvalidRequest"
    assert "never retried" in caught.value.reason
    assert len(first.received) == 1
    assert not second.received
    assert caught.value.record.outcome == "InvalidRequest"
    assert ledger.spent.tokens == 0


async def test_an_error_outside_failover_on_stops_the_call() -> None:
    router, _, second, _, _ = build_router([failure(ErrorKind.OVERLOADED)])
    with pytest.raises(RouteError) as caught:
        await router.complete(
            plan(max_retries=0, failover_on=frozenset({"Timeout"})), request(), RunLedger("r")
        )
    assert caught.value.kind == "Overloaded"
    assert not second.received


async def test_a_hanging_adapter_times_out_and_fails_over() -> None:
    router, first, second, _, _ = build_router([HANG])
    routed = await router.complete(
        plan(max_retries=0, attempt_timeout_seconds=0.05), request(), RunLedger("run-a")
    )
    assert first.timeouts == [0.05], "the adapter gets the policy's attempt timeout"
    assert routed.record.adapter == "fallback"
    assert routed.record.attempts[0].error_kind == "Timeout"
    assert len(second.received) == 1


async def test_an_adapter_that_breaks_outside_the_taxonomy_counts_as_a_malformed_response() -> None:
    router, _, _, _, _ = build_router([ValueError("unexpected JSON")])
    routed = await router.complete(plan(max_retries=0), request(), RunLedger("run-a"))
    assert routed.record.adapter == "fallback"
    assert routed.record.attempts[0].error_kind == "MalformedResponse"
    assert "unexpected JSON" in (routed.record.attempts[0].error or "")


async def test_when_every_adapter_fails_the_call_fails_with_the_last_reason() -> None:
    router, _, _, _, metrics = build_router([failure(ErrorKind.OVERLOADED)], [failure(ErrorKind.TIMEOUT)])
    ledger = RunLedger("run-a")
    with pytest.raises(RouteError) as caught:
        await router.complete(plan(max_retries=0), request(), ledger)
    assert caught.value.kind == "Timeout"
    assert "every adapter in the chain failed" in caught.value.reason
    assert caught.value.record.outcome == "Timeout"
    assert (
        metrics.registry.get_sample_value(
            "jesus_router_calls_total", {"adapter": "none", "provider": "none", "outcome": "Timeout"}
        )
        == 1
    )


async def test_the_failover_deadline_stops_the_walk() -> None:
    router, _, second, clock, _ = build_router([failure(ErrorKind.OVERLOADED)])
    router_plan = plan(max_retries=3, failover_deadline_seconds=0.1)
    # The second backoff pushes the fake clock past the deadline before the next decision.
    with pytest.raises(RouteError) as caught:
        await router.complete(router_plan, request(), RunLedger("run-a"))
    assert "deadline" in caught.value.reason
    assert clock.slept
    assert not second.received


async def test_an_open_breaker_skips_its_adapter_until_the_probe() -> None:
    breaker = BreakerConfig(failure_threshold=2, open_seconds=30.0)
    router, first, _, clock, _ = build_router([failure(ErrorKind.OVERLOADED)], breaker=breaker)
    ledger = RunLedger("run-a")
    for _ in range(2):
        await router.complete(plan(max_retries=0), request(), ledger)
    assert router.breaker_state("primary").status is BreakerStatus.OPEN
    calls_before = len(first.received)

    skipped = await router.complete(plan(max_retries=0), request(), ledger)
    assert len(first.received) == calls_before, "an open breaker sends nothing to its adapter"
    assert skipped.record.attempts[0].error_kind == "CircuitOpen"
    assert skipped.record.adapter == "fallback"

    clock.now += 31
    first.script[:] = [reply("recovered")]
    probed = await router.complete(plan(max_retries=0), request(), ledger)
    assert probed.record.adapter == "primary"
    assert router.breaker_state("primary").status is BreakerStatus.CLOSED


async def test_every_breaker_open_means_no_adapter_available() -> None:
    breaker = BreakerConfig(failure_threshold=1, open_seconds=30.0)
    router, _, _, _, _ = build_router(
        [failure(ErrorKind.CONNECTION)], [failure(ErrorKind.CONNECTION)], breaker=breaker
    )
    with pytest.raises(RouteError):
        await router.complete(plan(max_retries=0), request(), RunLedger("run-a"))
    with pytest.raises(RouteError) as caught:
        await router.complete(plan(max_retries=0), request(), RunLedger("run-b"))
    assert caught.value.kind == NO_ADAPTER_AVAILABLE


async def test_the_allowance_clamps_output_tokens() -> None:
    router, first, _, _, _ = build_router([reply(input_tokens=5, output_tokens=5)])
    ledger = RunLedger("run-a", Allowance(max_tokens=112))
    await router.complete(plan(), request("x" * 30, max_tokens=1000), ledger)
    # 30 bytes and 32 tokens of template overhead take at most 62 input tokens, so 50 output tokens remain.
    assert input_tokens_upper_bound(request("x" * 30)) == 62
    assert first.received[0].max_tokens == 50


async def test_an_exhausted_allowance_stops_the_run_before_any_call() -> None:
    router, first, second, _, _ = build_router([reply(input_tokens=30, output_tokens=60)])
    ledger = RunLedger("run-a", Allowance(max_tokens=100))
    await router.complete(plan(), request(), ledger)
    with pytest.raises(RouteError) as caught:
        await router.complete(plan(), request(), ledger)
    assert caught.value.kind == ALLOWANCE_EXCEEDED
    assert caught.value.stops_run
    assert "token allowance exhausted: 90 of 100" in caught.value.reason
    assert len(first.received) == 1
    assert not second.received
    assert caught.value.record.outcome == ALLOWANCE_EXCEEDED


async def test_a_money_allowance_is_enforced_with_the_adapters_prices() -> None:
    router, first, _, _, _ = build_router([reply(input_tokens=100_000, output_tokens=0)])
    ledger = RunLedger("run-a", Allowance(max_cost_micros=400_000))
    await router.complete(plan(), request(max_tokens=10), ledger)
    assert ledger.spent.cost_micros == 300_000
    with pytest.raises(RouteError) as caught:
        await router.complete(plan(), request("y" * 300_000, max_tokens=10), ledger)
    assert caught.value.kind == ALLOWANCE_EXCEEDED
    assert len(first.received) == 1


async def test_a_stream_yields_deltas_then_the_record() -> None:
    router, _, _, _, _ = build_router([reply("one two three")])
    ledger = RunLedger("run-a")
    events = [event async for event in router.stream(plan(), request(), ledger)]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).split() == ["one", "two", "three"]
    end = events[-1]
    assert isinstance(end, RoutedStreamEnd)
    assert end.record.streamed
    assert end.record.adapter == "primary"
    assert ledger.spent.tokens == 15
    assert ledger.reserved.tokens == 0


async def test_a_stream_fails_over_before_its_first_event() -> None:
    router, _, _, _, _ = build_router([failure(ErrorKind.OVERLOADED)], [reply("backup answer")])
    events = [event async for event in router.stream(plan(max_retries=0), request(), RunLedger("run-a"))]
    end = events[-1]
    assert isinstance(end, RoutedStreamEnd)
    assert end.record.adapter == "fallback"
    assert end.response.content == "backup answer"


async def test_a_stream_that_breaks_after_text_fails_instead_of_failing_over() -> None:
    router, _, second, _, _ = build_router([BREAK_MID_STREAM])
    ledger = RunLedger("run-a")
    seen: list[str] = []

    async def consume() -> None:
        async for event in router.stream(plan(max_retries=0), request(), ledger):
            if isinstance(event, TextDelta):
                seen.append(event.text)

    with pytest.raises(RouteError) as caught:
        await consume()
    assert seen == ["partial "]
    assert caught.value.kind == "Connection"
    assert "stream broke" in caught.value.reason
    assert not second.received
    assert ledger.reserved.tokens == 0


def test_a_plan_naming_an_unknown_adapter_is_rejected() -> None:
    router, _, _, _, _ = build_router([reply()])
    with pytest.raises(ValueError, match="unknown model adapters: ghost"):
        router.check_plan(RoutePlan(chain=("primary", "ghost")))


async def test_tokens_billed_for_a_failed_answer_are_metered() -> None:
    billed = failure(ErrorKind.CONTENT_FILTERED)
    billed.usage = Usage(30, 12)
    router, _, _, _, _ = build_router([billed])
    ledger = RunLedger("run-a")
    with pytest.raises(RouteError) as caught:
        await router.complete(plan(max_retries=0), request(), ledger)
    assert caught.value.kind == "ContentFiltered"
    assert (caught.value.record.input_tokens, caught.value.record.output_tokens) == (30, 12)
    assert ledger.spent.tokens == 42
    assert ledger.spent.cost_micros == caught.value.record.cost_micros > 0


class SlowAdapter(FakeAdapter):
    """Answers after a short pause, so that calls overlap."""

    async def complete(self, request: ChatRequest, *, timeout_seconds: float) -> ChatResponse:
        await asyncio.sleep(0.01)
        return await super().complete(request, timeout_seconds=timeout_seconds)


async def test_concurrent_calls_cannot_spend_the_same_allowance_twice() -> None:
    slow = SlowAdapter([reply(input_tokens=1, output_tokens=20)])
    router = Router({"primary": RoutedAdapter("primary", slow, PRICE)})
    ledger = RunLedger("run-a", Allowance(max_tokens=265))
    route = RoutePlan(chain=("primary",))
    outcomes = await asyncio.gather(
        *(router.complete(route, request(max_tokens=20), ledger) for _ in range(10)), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, RouteError)]
    # Each call reserves at most 34 input tokens ("hi" and the template) + 20 output tokens: four fit
    # whole (216), the fifth gets the 15 left after its input.
    assert sorted(r.max_tokens for r in slow.received) == [15, 20, 20, 20, 20]
    assert len(refused) == 5
    assert all(r.kind == ALLOWANCE_EXCEEDED for r in refused)
    assert ledger.reserved == Spend()
