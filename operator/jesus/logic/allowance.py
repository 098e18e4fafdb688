"""Pure allowance decisions: what a run may still spend on model calls, and what a call costs.

The router's ledger asks `admit_call` before each attempt and charges after it; nothing here reads a
clock or does I/O.
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
    """What a run has spent so far."""

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
class AllowanceDecision:
    """Whether a call may be sent and with how many output tokens at most; `reason` when it may not."""

    allowed: bool
    max_output_tokens: int = 0
    reason: str = ""


def estimate_input_tokens(characters: int) -> int:
    """A deliberately high estimate of a prompt's tokens from its length (about 3 characters a token).

    Over-estimating keeps the pre-call check on the safe side of the allowance.
    """
    return math.ceil(characters / 3)


def cost_micros(input_tokens: int, output_tokens: int, price: CallPrice) -> int:
    """Cost of a call in micro-units, rounded up so metering never under-charges."""
    raw = input_tokens * price.input_micros_per_mtok + output_tokens * price.output_micros_per_mtok
    return math.ceil(raw / TOKENS_PER_PRICE_UNIT)


def admit_call(
    allowance: Allowance,
    spent: Spend,
    *,
    requested_output_tokens: int,
    estimated_input_tokens: int,
    price: CallPrice,
) -> AllowanceDecision:
    """Decide whether a call fits what the run has left, clamping its output tokens so that it does.

    The worst case of a call is its estimated input plus every output token it asks for; the output
    limit shrinks until that worst case fits both the token and the money allowance. A call that cannot
    fit even one output token is refused.
    """
    output_tokens = requested_output_tokens
    if allowance.max_tokens is not None:
        left = allowance.max_tokens - spent.tokens - estimated_input_tokens
        if left < 1:
            return AllowanceDecision(
                False,
                reason=(
                    f"token allowance exhausted: {spent.tokens} of {allowance.max_tokens} tokens spent, "
                    f"the next prompt needs about {estimated_input_tokens}"
                ),
            )
        output_tokens = min(output_tokens, left)
    if allowance.max_cost_micros is not None:
        money_left = (
            allowance.max_cost_micros - spent.cost_micros - cost_micros(estimated_input_tokens, 0, price)
        )
        if money_left <= 0:
            return AllowanceDecision(
                False,
                reason=(
                    f"cost allowance exhausted: {format_micros(spent.cost_micros, places=6)} of "
                    f"{format_micros(allowance.max_cost_micros, places=6)} spent"
                ),
            )
        if price.output_micros_per_mtok > 0:
            affordable = money_left * TOKENS_PER_PRICE_UNIT // price.output_micros_per_mtok
            output_tokens = min(output_tokens, affordable)
        if output_tokens < 1:
            return AllowanceDecision(
                False,
                reason=(
                    "cost allowance too small for another call: "
                    f"{format_micros(money_left, places=6)} left of "
                    f"{format_micros(allowance.max_cost_micros, places=6)}"
                ),
            )
    return AllowanceDecision(True, max_output_tokens=output_tokens)


def allowance_exceeded(allowance: Allowance, spent: Spend) -> str | None:
    """Why `spent` is over the allowance, or None when it is within it."""
    if allowance.max_tokens is not None and spent.tokens > allowance.max_tokens:
        return f"token allowance exceeded: {spent.tokens} of {allowance.max_tokens} tokens spent"
    if allowance.max_cost_micros is not None and spent.cost_micros > allowance.max_cost_micros:
        return (
            f"cost allowance exceeded: {format_micros(spent.cost_micros, places=6)} of "
            f"{format_micros(allowance.max_cost_micros, places=6)} spent"
        )
    return None
