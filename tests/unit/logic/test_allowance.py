"""Table-driven and property tests of the pure allowance decisions: admission, reservation, overrun."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jesus.logic.allowance import (
    Allowance,
    AllowanceDecision,
    CallPrice,
    Reservation,
    Spend,
    admit_call,
    allowance_exceeded,
    cost_micros,
    reservation_overrun,
)

PRICE = CallPrice(input_micros_per_mtok=3_000_000, output_micros_per_mtok=15_000_000)


def admit(
    allowance: Allowance, spent: Spend, requested: int, max_input: int, price: CallPrice = PRICE
) -> AllowanceDecision:
    """admit_call at PRICE, the positional order the tables below use."""
    return admit_call(
        allowance, spent, requested_output_tokens=requested, max_input_tokens=max_input, price=price
    )


@pytest.mark.parametrize(
    ("allowance", "spent", "requested", "max_input", "allowed", "max_output"),
    [
        (Allowance(), Spend(), 1024, 100, True, 1024),
        (Allowance(max_tokens=1000), Spend(tokens=200), 1024, 100, True, 700),
        (Allowance(max_tokens=1000), Spend(tokens=900), 1024, 100, False, 0),
        # 1.00 left; the prompt costs 300 micros, output 15 micros per token -> 66646 tokens affordable
        (Allowance(max_cost_micros=1_000_000), Spend(), 100_000, 100, True, 66_646),
        (Allowance(max_cost_micros=1_000_000), Spend(cost_micros=1_000_000), 10, 1, False, 0),
        (Allowance(max_cost_micros=310), Spend(), 10, 100, False, 0),  # 10 micros left buys no token
        (Allowance(max_tokens=500, max_cost_micros=1_000_000), Spend(tokens=100), 1024, 100, True, 300),
    ],
)
def test_admit_call(
    allowance: Allowance, spent: Spend, requested: int, max_input: int, allowed: bool, max_output: int
) -> None:
    decision = admit(allowance, spent, requested, max_input)
    assert decision.allowed is allowed
    assert decision.max_output_tokens == max_output
    assert bool(decision.reason) is not allowed
    assert (decision.reservation is not None) is allowed


def test_an_admitted_call_reserves_its_worst_case_within_a_tiny_allowance() -> None:
    # The case: an allowance of 20 micros. At 0.15/0.60 per million tokens a prompt of at most 6
    # tokens costs at most 1 micro (rounded up); the 19 left buy 31 output tokens, 20 micros in all.
    cheap = CallPrice(input_micros_per_mtok=150_000, output_micros_per_mtok=600_000)
    decision = admit(Allowance(max_cost_micros=20), Spend(), 1024, 6, price=cheap)
    assert decision.max_output_tokens == 31
    assert decision.reservation == Reservation(input_tokens=6, output_tokens=31, cost_micros=20)
    assert decision.reservation.tokens == 37


def test_a_refusal_says_what_was_spent_or_reserved_and_what_the_prompt_may_take() -> None:
    tokens = admit(Allowance(max_tokens=1000), Spend(tokens=900), 1024, 100)
    assert tokens.reason == (
        "token allowance exhausted: 900 of 1000 tokens spent or reserved, the next prompt may take up to 100"
    )
    money = admit(Allowance(max_cost_micros=300), Spend(), 10, 100)
    assert money.reason == (
        "cost allowance exhausted: 0.000000 of 0.000300 spent or reserved, "
        "the next prompt may cost up to 0.000300"
    )


def test_a_free_output_is_bounded_by_tokens_alone() -> None:
    free_output = CallPrice(input_micros_per_mtok=1_000_000, output_micros_per_mtok=0)
    decision = admit(Allowance(max_cost_micros=10), Spend(), 5000, 8, price=free_output)
    assert decision.max_output_tokens == 5000
    assert decision.reservation == Reservation(8, 5000, 8)


@given(
    max_tokens=st.none() | st.integers(1, 10_000),
    max_cost=st.none() | st.integers(1, 10_000_000),
    spent_tokens=st.integers(0, 10_000),
    spent_cost=st.integers(0, 10_000_000),
    requested=st.integers(1, 100_000),
    max_input=st.integers(0, 5_000),
    input_price=st.integers(0, 100_000_000),
    output_price=st.integers(0, 100_000_000),
)
def test_an_admitted_call_fits_the_allowance_at_worst(
    max_tokens: int | None,
    max_cost: int | None,
    spent_tokens: int,
    spent_cost: int,
    requested: int,
    max_input: int,
    input_price: int,
    output_price: int,
) -> None:
    allowance = Allowance(max_tokens, max_cost)
    spent = Spend(spent_tokens, spent_cost)
    price = CallPrice(input_price, output_price)
    decision = admit(allowance, spent, requested, max_input, price)
    if decision.allowed:
        assert decision.reservation is not None
        assert decision.reservation.cost_micros == cost_micros(max_input, decision.max_output_tokens, price)
        worst = spent.plus(decision.reservation.tokens, decision.reservation.cost_micros)
        assert allowance_exceeded(allowance, worst) is None
        assert 1 <= decision.max_output_tokens <= requested
    else:
        assert decision.reservation is None


@pytest.mark.parametrize(
    ("usage", "fragments"),
    [
        ((10, 100, 1000), []),
        ((0, 0, 0), []),
        ((11, 100, 1000), ["11 input tokens where at most 10 were reserved"]),
        ((10, 101, 1000), ["101 output tokens where at most 100 were reserved"]),
        ((10, 100, 1001), ["a cost of 0.001001 where at most 0.001000 was reserved"]),
        ((11, 101, 1001), ["11 input", "101 output", "a cost of"]),
    ],
)
def test_reservation_overrun(usage: tuple[int, int, int], fragments: list[str]) -> None:
    reason = reservation_overrun(Reservation(10, 100, 1000), *usage)
    if not fragments:
        assert reason is None
    else:
        assert reason is not None
        for fragment in fragments:
            assert fragment in reason


@pytest.mark.parametrize(
    ("spent", "fragment"),
    [
        (Spend(tokens=100, cost_micros=100), None),
        (Spend(tokens=101), "token allowance exceeded"),
        (Spend(cost_micros=2_000_001), "cost allowance exceeded: 2.000001 of 2.000000"),
    ],
)
def test_allowance_exceeded(spent: Spend, fragment: str | None) -> None:
    reason = allowance_exceeded(Allowance(max_tokens=100, max_cost_micros=2_000_000), spent)
    if fragment is None:
        assert reason is None
    else:
        assert reason is not None
        assert fragment in reason
