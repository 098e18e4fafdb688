"""The router over real adapters (official SDKs) against local fake provider servers.

Primary and fallback are real HTTP endpoints: 503s, refused connections, hangs and malformed answers
go through the SDKs and the adapters' error taxonomy before the router decides.
"""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry
from tests.builders.adapters import adapter_config
from tests.builders.chat import request
from tests.providers import Fail, Hang, Raw, Reply, serve_anthropic, serve_openai, unused_base_url

from jesus.logic.allowance import Allowance, CallPrice
from jesus.logic.routing import BreakerConfig, RetryPolicy, RoutePlan
from jesus.router import (
    ALLOWANCE_EXCEEDED,
    RoutedAdapter,
    RoutedStreamEnd,
    RouteError,
    Router,
    RouterMetrics,
    RunLedger,
)
from jesus_adapters import build_adapter
from jesus_adapters.types import TextDelta

PRICE = CallPrice(input_micros_per_mtok=3_000_000, output_micros_per_mtok=15_000_000)


def routed(name: str, provider: str, base_url: str) -> RoutedAdapter:
    return RoutedAdapter(name, build_adapter(adapter_config(provider, base_url)), PRICE)


def router_over(provider: str, /, **base_urls: str) -> Router:
    """A router over one adapter of `provider` per keyword (adapter name = its base URL), in order."""
    return Router({name: routed(name, provider, url) for name, url in base_urls.items()})


def plan(*chain: str, retries: int = 0, timeout: float = 5.0) -> RoutePlan:
    return RoutePlan(
        chain=chain,
        attempt_timeout_seconds=timeout,
        retry=RetryPolicy(max_retries=retries, backoff_base_seconds=0.001, backoff_max_seconds=0.01),
    )


async def test_a_503_from_the_primary_fails_over_to_a_different_provider() -> None:
    async with serve_openai() as primary, serve_anthropic() as fallback:
        primary.script(Fail(503, "overloaded"), Fail(503, "still overloaded"))
        fallback.script(Reply(text="from anthropic", input_tokens=100, output_tokens=20))
        router = Router(
            {
                "openai": routed("openai", "openai", primary.base_url),
                "claude": routed("claude", "anthropic", fallback.base_url),
            },
            metrics=RouterMetrics(CollectorRegistry()),
        )
        ledger = RunLedger("run-a")
        answer = await router.complete(plan("openai", "claude", retries=1), request(), ledger)
    record = answer.record
    assert answer.response.content == "from anthropic"
    assert record.adapter == "claude"
    assert [(a.adapter, a.error_kind) for a in record.attempts] == [
        ("openai", "Overloaded"),
        ("openai", "Overloaded"),
        ("claude", None),
    ]
    assert (record.input_tokens, record.output_tokens) == (100, 20)
    assert record.cost_micros == (100 * 3_000_000 + 20 * 15_000_000) // 1_000_000
    assert len(primary.requests) == 2


async def test_a_refused_connection_fails_over() -> None:
    async with serve_openai() as fallback:
        fallback.script(Reply(text="backup"))
        router = router_over("openai-compatible", dead=unused_base_url(), live=fallback.base_url)
        answer = await router.complete(plan("dead", "live"), request(), RunLedger("run-a"))
    assert answer.record.attempts[0].error_kind == "Connection"
    assert answer.record.adapter == "live"


async def test_a_hanging_provider_fails_over_after_the_attempt_timeout() -> None:
    async with serve_openai() as primary, serve_openai() as fallback:
        primary.script(Hang())
        fallback.script(Reply(text="in time"))
        router = router_over("vllm", slow=primary.base_url, fast=fallback.base_url)
        started = time.monotonic()
        answer = await router.complete(plan("slow", "fast", timeout=0.5), request(), RunLedger("run-a"))
        elapsed = time.monotonic() - started
    assert answer.record.adapter == "fast"
    assert answer.record.attempts[0].error_kind == "Timeout"
    assert 0.5 <= elapsed < 3


async def test_a_malformed_answer_fails_over() -> None:
    async with serve_openai() as primary, serve_openai() as fallback:
        primary.script(Raw("{not json at all"))
        fallback.script(Reply(text="well formed"))
        router = router_over("openai", bad=primary.base_url, good=fallback.base_url)
        answer = await router.complete(plan("bad", "good"), request(), RunLedger("run-a"))
    assert answer.record.attempts[0].error_kind == "MalformedResponse"
    assert answer.response.content == "well formed"


async def test_an_invalid_request_does_not_fail_over() -> None:
    async with serve_openai() as primary, serve_openai() as fallback:
        primary.script(Fail(400, "messages: field required", type="invalid_request_error"))
        router = router_over("openai", a=primary.base_url, b=fallback.base_url)
        with pytest.raises(RouteError) as caught:
            await router.complete(plan("a", "b", retries=2), request(), RunLedger("run-a"))
        assert not fallback.requests
    assert caught.value.kind == "InvalidRequest"
    assert len(primary.requests) == 1


async def test_a_rate_limit_is_retried_on_the_same_provider() -> None:
    async with serve_openai() as primary:
        primary.script(Fail(429, "slow down", headers={"retry-after": "0"}), Reply(text="after the wait"))
        router = router_over("openai", a=primary.base_url)
        answer = await router.complete(plan("a", retries=1), request(), RunLedger("run-a"))
    assert [a.error_kind for a in answer.record.attempts] == ["RateLimited", None]
    assert answer.response.content == "after the wait"


async def test_the_breaker_stops_calling_a_dead_provider() -> None:
    async with (
        serve_openai(default=Fail(503, "down")) as primary,
        serve_openai(default=Reply(text="ok")) as fallback,
    ):
        router = Router(
            {"a": routed("a", "openai", primary.base_url), "b": routed("b", "openai", fallback.base_url)},
            breaker=BreakerConfig(failure_threshold=2, open_seconds=60),
        )
        for _ in range(5):
            answer = await router.complete(plan("a", "b"), request(), RunLedger("run-a"))
            assert answer.record.adapter == "b"
    assert len(primary.requests) == 2, "after two failures the open breaker skips the primary"
    assert len(fallback.requests) == 5


async def test_the_allowance_is_enforced_against_real_usage() -> None:
    async with serve_openai(default=Reply(text="long answer", input_tokens=30, output_tokens=40)) as provider:
        router = router_over("openai", a=provider.base_url)
        ledger = RunLedger("run-a", Allowance(max_tokens=150))
        await router.complete(plan("a"), request(max_tokens=80), ledger)
        # 80 tokens are left and the prompt "hi" takes at most 34 (ADR 14): the output limit shrinks to 46.
        second = await router.complete(plan("a"), request(max_tokens=80), ledger)
        with pytest.raises(RouteError) as caught:
            await router.complete(plan("a"), request(max_tokens=80), ledger)
    limits = [r.json.get("max_completion_tokens", r.json.get("max_tokens")) for r in provider.requests]
    assert limits == [80, 46]
    assert second.record.error is None
    assert caught.value.kind == ALLOWANCE_EXCEEDED
    assert "token allowance exhausted: 140 of 150" in caught.value.reason
    assert ledger.spent.tokens == 140


async def test_a_provider_reporting_more_than_the_reservation_is_charged_and_stops_the_run() -> None:
    async with serve_openai(default=Reply(text="long answer", input_tokens=60, output_tokens=40)) as provider:
        router = router_over("openai", a=provider.base_url)
        ledger = RunLedger("run-a", Allowance(max_tokens=150))
        first = await router.complete(plan("a"), request(max_tokens=80), ledger)
        with pytest.raises(RouteError) as caught:
            await router.complete(plan("a"), request(max_tokens=80), ledger)
    assert len(provider.requests) == 1
    assert ledger.spent.tokens == 100, "the spend is real and charged"
    assert first.record.error is not None
    assert "reported more than the call's reserved worst case (60 input tokens" in first.record.error
    assert caught.value.kind == ALLOWANCE_EXCEEDED
    assert caught.value.stops_run
    assert caught.value.reason.startswith("further calls refused: model adapter a reported more")


async def test_a_streamed_answer_is_relayed_and_metered() -> None:
    async with serve_openai() as primary, serve_openai() as fallback:
        primary.script(Fail(502, "bad gateway"))
        fallback.script(Reply(text="streamed through the router", input_tokens=9, output_tokens=5))
        router = router_over("openai", a=primary.base_url, b=fallback.base_url)
        events = [e async for e in router.stream(plan("a", "b"), request(), RunLedger("run-a"))]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    end = events[-1]
    assert text == "streamed through the router"
    assert isinstance(end, RoutedStreamEnd)
    assert end.record.adapter == "b"
    assert (end.record.input_tokens, end.record.output_tokens) == (9, 5)
