"""Pure allowance decisions: what a run may still spend on model calls, and what a call costs.

The router's ledger asks `admit_call` before each attempt, holds the call's worst case (its
`Reservation`) while the call is in flight, and charges what the provider reports after it; a report
beyond the reservation is recorded and stops the run (`reservation_overrun`). The worst case rests on a
true upper bound of the call's input tokens (ADR 14), which the router computes from the request
(`jesus_adapters.estimate.input_tokens_upper_bound`). Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jesus.api.common import TOKENS_PER_PRICE_UNIT, format_micros


@dataclass(frozen=True, slots=True)
class Allowance:
    """What one run may spend on model calls; `None` means no limit on that axis."""

    max_tokens: int | None = None
    max_cost_micros: int | None = None


@dataclass(frozen=True, slots=True)
class Spend:
    """What a run has spent (or holds reserved) so far."""

    tokens: int = 0
    cost_micros: int = 0

    def plus(self, tokens: int, cost_micros: int) -> Spend:
        """This spend with one more call added."""
        return Spend(self.tokens + tokens, self.cost_micros + cost_micros)


@dataclass(frozen=True, slots=True)
class CallPrice:
    """An adapter's prices in micro-units per million tokens."""

    input_micros_per_mtok: int = 0
    output_micros_per_mtok: int = 0


@dataclass(frozen=True, slots=True)
class Reservation:
    """The worst case of one admitted call, held against the allowance until the call ends: at most
    `input_tokens` in, `output_tokens` out, and what that costs."""

    input_tokens: int
    output_tokens: int
    cost_micros: int

    @property
    def tokens(self) -> int:
        """Input and output tokens together."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class AllowanceDecision:
    """Whether a call may be sent, with how many output tokens at most and the worst case to hold
    (`reservation`); `reason` when it may not."""

    allowed: bool
    max_output_tokens: int = 0
    reason: str = ""
    reservation: Reservation | None = None


def cost_micros(input_tokens: int, output_tokens: int, price: CallPrice) -> int:
    """Cost of a call in micro-units, rounded up so metering never under-charges."""
    raw = input_tokens * price.input_micros_per_mtok + output_tokens * price.output_micros_per_mtok
    return math.ceil(raw / TOKENS_PER_PRICE_UNIT)


def _money(micros: int) -> str:
    return format_micros(micros, places=6)


def admit_call(
    allowance: Allowance,
    committed: Spend,
    *,
    requested_output_tokens: int,
    max_input_tokens: int,
    price: CallPrice,
) -> AllowanceDecision:
    """Decide whether a call fits what the run has not yet spent or reserved (`committed`), clamping its
    output tokens so that its worst case does.

    The worst case of a call is `max_input_tokens` (an upper bound, never an estimate) plus every output
    token it may produce; the output limit shrinks until that worst case fits both the token and the
    money allowance. Costs round up, so the reservation's cost is never below what the call can be
    charged. A call that cannot fit even one output token is refused.
    """
    output_tokens = requested_output_tokens
    if allowance.max_tokens is not None:
        left = allowance.max_tokens - committed.tokens - max_input_tokens
        if left < 1:
            return AllowanceDecision(
                False,
                reason=(
                    f"token allowance exhausted: {committed.tokens} of {allowance.max_tokens} tokens spent "
                    f"or reserved, the next prompt may take up to {max_input_tokens}"
                ),
            )
        output_tokens = min(output_tokens, left)
    if allowance.max_cost_micros is not None:
        input_cost = cost_micros(max_input_tokens, 0, price)
        money_left = allowance.max_cost_micros - committed.cost_micros - input_cost
        if money_left <= 0:
            return AllowanceDecision(
                False,
                reason=(
                    f"cost allowance exhausted: {_money(committed.cost_micros)} of "
                    f"{_money(allowance.max_cost_micros)} spent or reserved, the next prompt may cost up "
                    f"to {_money(input_cost)}"
                ),
            )
        if price.output_micros_per_mtok > 0:
            # The input's cost, rounded up on its own, leaves at most the exact remainder for output.
            affordable = money_left * TOKENS_PER_PRICE_UNIT // price.output_micros_per_mtok
            output_tokens = min(output_tokens, affordable)
        if output_tokens < 1:
            return AllowanceDecision(
                False,
                reason=(
                    f"cost allowance too small for another call: {_money(money_left)} left of "
                    f"{_money(allowance.max_cost_micros)}"
                ),
            )
    reservation = Reservation(
        max_input_tokens, output_tokens, cost_micros(max_input_tokens, output_tokens, price)
    )
    return AllowanceDecision(True, max_output_tokens=output_tokens, reservation=reservation)


def reservation_overrun(
    reservation: Reservation, input_tokens: int, output_tokens: int, cost: int
) -> str | None:
    """Why a call's reported usage goes beyond the worst case reserved for it, or None when it does not.

    It should not happen; when it does (a provider that bills more than the text it was sent, or a
    template larger than ADR 14 allows for), the spend is real but the allowance no longer bounds it.
    """
    over: list[str] = []
    if input_tokens > reservation.input_tokens:
        over.append(f"{input_tokens} input tokens where at most {reservation.input_tokens} were reserved")
    if output_tokens > reservation.output_tokens:
        over.append(f"{output_tokens} output tokens where at most {reservation.output_tokens} were reserved")
    if cost > reservation.cost_micros:
        over.append(f"a cost of {_money(cost)} where at most {_money(reservation.cost_micros)} was reserved")
    return "; ".join(over) if over else None


def admit_to_account(
    allowance: Allowance,
    spent: Spend,
    reserved: Spend,
    overrun: str | None,
    *,
    requested_output_tokens: int,
    max_input_tokens: int,
    price: CallPrice,
) -> AllowanceDecision:
    """Decide a call against a run's whole account: refused once a call overran its reservation (the
    run's spending is no longer bounded), else `admit_call` against what is spent and reserved.

    Every store of accounts (in memory, or shared by replicas) decides with this function.
    """
    if overrun is not None:
        return AllowanceDecision(False, reason=f"further calls refused: {overrun}")
    return admit_call(
        allowance,
        spent.plus(reserved.tokens, reserved.cost_micros),
        requested_output_tokens=requested_output_tokens,
        max_input_tokens=max_input_tokens,
        price=price,
    )


def overrun_to_note(
    allowance: Allowance,
    noted: str | None,
    reservation: Reservation,
    input_tokens: int,
    output_tokens: int,
    cost: int,
    *,
    adapter: str,
) -> str | None:
    """The overrun a settled call adds to its run's account, or None: only the first overrun is kept
    (`noted` is the one already kept), and only a run with an allowance has one to break."""
    if noted is not None or allowance == Allowance():
        return None
    overrun = reservation_overrun(reservation, input_tokens, output_tokens, cost)
    if overrun is None:
        return None
    return (
        f"model adapter {adapter} reported more than the call's reserved worst case ({overrun}); "
        "the spend is charged, but the allowance can no longer bound the run"
    )


def allowance_exceeded(allowance: Allowance, spent: Spend) -> str | None:
    """Why `spent` is over the allowance, or None when it is within it."""
    if allowance.max_tokens is not None and spent.tokens > allowance.max_tokens:
        return f"token allowance exceeded: {spent.tokens} of {allowance.max_tokens} tokens spent"
    if allowance.max_cost_micros is not None and spent.cost_micros > allowance.max_cost_micros:
        return (
            f"cost allowance exceeded: {_money(spent.cost_micros)} of "
            f"{_money(allowance.max_cost_micros)} spent"
        )
    return None
