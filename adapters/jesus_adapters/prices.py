"""Default list prices per model, in micro-units of USD per million tokens.

Used only when a ModelAdapter spec gives no prices (the spec always wins). These are the
providers' published list prices for standard, uncached, non-batch use when this table was
written, for the models whose prices were known then; providers change prices and add models,
so production specs should state their prices.
Self-hosted engines (vLLM, llama.cpp) have no list price: their cost is the cluster's.
"""

from __future__ import annotations

from collections.abc import Mapping

from jesus_adapters.types import MICROS_PER_UNIT, Price


def usd(input_per_mtok: str, output_per_mtok: str) -> Price:
    """A price from decimal USD strings per million tokens, e.g. usd("3", "15")."""
    return Price(_micros(input_per_mtok), _micros(output_per_mtok))


def _micros(amount: str) -> int:
    whole, _, fraction = amount.partition(".")
    if len(fraction) > 6:
        raise ValueError(f"price {amount!r} has more than six decimal places")
    return int(whole or "0") * MICROS_PER_UNIT + int(fraction.ljust(6, "0") or "0")


ANTHROPIC_PRICES: Mapping[str, Price] = {
    "claude-opus-4-5": usd("5", "25"),
    "claude-sonnet-4-5": usd("3", "15"),
    "claude-haiku-4-5": usd("1", "5"),
}

OPENAI_PRICES: Mapping[str, Price] = {
    "gpt-5": usd("1.25", "10"),
    "gpt-5-mini": usd("0.25", "2"),
    "gpt-5-nano": usd("0.05", "0.40"),
    "gpt-4.1": usd("2", "8"),
    "gpt-4.1-mini": usd("0.40", "1.60"),
    "gpt-4.1-nano": usd("0.10", "0.40"),
    "gpt-4o": usd("2.50", "10"),
    "gpt-4o-mini": usd("0.15", "0.60"),
    "o3": usd("2", "8"),
    "o4-mini": usd("1.10", "4.40"),
}
