"""Property: whatever the prompts, allowances and prices, a provider whose reported usage obeys the upper
bound of ADR 14 can never make a run spend past its allowance, not even with concurrent calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jesus.logic.allowance import Allowance, CallPrice, Spend
from jesus.logic.routing import RoutePlan
from jesus.router import RoutedAdapter, RouteError, Router, RunLedger
from jesus_adapters.estimate import input_tokens_upper_bound
from jesus_adapters.types import ChatRequest, ChatResponse, Message, StreamDone, ToolCall, ToolSpec, Usage


@dataclass
class BoundedProvider:
    """Bills a share of the request's input upper bound and of its `max_tokens`, after yielding once so
    that concurrent calls overlap."""

    shares: list[tuple[float, float]]
    provider: str = "bounded"
    model: str = "bounded-model"
    billed: list[Usage] = field(default_factory=list)

    async def complete(self, request: ChatRequest, *, timeout_seconds: float) -> ChatResponse:
        input_share, output_share = self.shares[len(self.billed) % len(self.shares)]
        usage = Usage(
            int(input_share * input_tokens_upper_bound(request)), int(output_share * request.max_tokens)
        )
        self.billed.append(usage)
        await asyncio.sleep(0)
        return ChatResponse("ok", (), "stop", usage, self.model, self.provider)

    async def stream(self, request: ChatRequest, *, timeout_seconds: float) -> AsyncIterator[StreamDone]:
        yield StreamDone(await self.complete(request, timeout_seconds=timeout_seconds))

    async def aclose(self) -> None:
        return None


texts = st.text(max_size=200)
arguments = st.dictionaries(st.text(max_size=8), st.text(max_size=20) | st.integers(), max_size=3)
messages = st.builds(
    Message,
    role=st.sampled_from(["system", "user", "assistant", "tool"]),
    content=texts,
    tool_calls=st.lists(st.builds(ToolCall, id=texts, name=texts, arguments=arguments), max_size=2).map(
        tuple
    ),
)
tools = st.builds(
    ToolSpec, name=texts, description=texts, input_schema=st.fixed_dictionaries({"type": st.just("object")})
)
requests = st.builds(
    ChatRequest,
    messages=st.lists(messages, min_size=1, max_size=4).map(tuple),
    tools=st.lists(tools, max_size=2).map(tuple),
    max_tokens=st.integers(1, 100_000),
)
prices = st.builds(CallPrice, st.integers(0, 100_000_000), st.integers(0, 100_000_000))
allowances = st.builds(
    Allowance,
    max_tokens=st.none() | st.integers(1, 50_000),
    max_cost_micros=st.none() | st.integers(1, 200_000),
)
shares = st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=4)


async def _spend(
    provider: BoundedProvider, price: CallPrice, ledger: RunLedger, calls: list[ChatRequest], rounds: int
) -> None:
    router = Router({"only": RoutedAdapter("only", provider, price)})
    plan = RoutePlan(chain=("only",))
    for _ in range(rounds):
        await asyncio.gather(*(router.complete(plan, call, ledger) for call in calls), return_exceptions=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    allowance=allowances,
    price=prices,
    calls=st.lists(requests, min_size=1, max_size=5),
    billed=shares,
    rounds=st.integers(1, 3),
)
def test_spending_never_passes_the_allowance(
    allowance: Allowance,
    price: CallPrice,
    calls: list[ChatRequest],
    billed: list[tuple[float, float]],
    rounds: int,
) -> None:
    provider = BoundedProvider(billed)
    ledger = RunLedger("run-a", allowance)
    asyncio.run(_spend(provider, price, ledger, calls, rounds))
    if allowance.max_tokens is not None:
        assert ledger.spent.tokens <= allowance.max_tokens
    if allowance.max_cost_micros is not None:
        assert ledger.spent.cost_micros <= allowance.max_cost_micros
    assert ledger.exceeded() is None
    assert ledger.reserved == Spend(), "every reservation was released"
    assert ledger.spent.tokens == sum(usage.total_tokens for usage in provider.billed)


def test_the_property_is_not_vacuous_concurrent_calls_are_clamped_and_refused() -> None:
    provider = BoundedProvider([(1.0, 1.0)])
    ledger = RunLedger("run-a", Allowance(max_cost_micros=1000))
    call = ChatRequest(messages=(Message("user", "\N{SLIGHTLY SMILING FACE}" * 10),), max_tokens=100)
    price = CallPrice(1_000_000, 1_000_000)  # a micro a token
    outcomes: list[object] = []

    async def run() -> None:
        router = Router({"only": RoutedAdapter("only", provider, price)})
        plan = RoutePlan(chain=("only",))
        outcomes.extend(
            await asyncio.gather(
                *(router.complete(plan, call, ledger) for _ in range(10)), return_exceptions=True
            )
        )

    asyncio.run(run())
    # Each call reserves 72 input tokens (40 bytes and 32 of template) and 100 output: five fit whole
    # (860), the sixth gets 68 output tokens (1000 in all), the rest are refused.
    assert sorted(usage.output_tokens for usage in provider.billed) == [68, 100, 100, 100, 100, 100]
    assert ledger.spent.cost_micros == 1000
    assert sum(isinstance(outcome, RouteError) for outcome in outcomes) == 4
