"""One table of allowance cases that every store of runs' accounts is held to: each must decide as the
pure `jesus.logic.allowance.admit_to_account` does on it."""

from __future__ import annotations

from jesus.logic.allowance import Allowance, CallPrice, Spend

PRICE = CallPrice(input_micros_per_mtok=3_000_000, output_micros_per_mtok=15_000_000)

# Allowance, spent, reserved, overrun, requested output tokens, input upper bound, price.
CASES = [
    (Allowance(), Spend(), Spend(), None, 100, 50, PRICE),
    (Allowance(max_tokens=1000), Spend(400, 0), Spend(300, 0), None, 500, 200, PRICE),
    (Allowance(max_tokens=1000), Spend(400, 0), Spend(300, 0), None, 500, 300, PRICE),  # exactly full
    (Allowance(max_tokens=1000), Spend(900, 0), Spend(99, 0), None, 10, 1, PRICE),
    (Allowance(max_cost_micros=10_000), Spend(0, 2_000), Spend(0, 1_000), None, 1000, 100, PRICE),
    (Allowance(max_cost_micros=10_000), Spend(0, 9_999), Spend(0, 0), None, 1000, 100, PRICE),
    (Allowance(max_cost_micros=10_000), Spend(0, 9_000), Spend(0, 699), None, 1000, 100, PRICE),
    (Allowance(max_cost_micros=1), Spend(), Spend(), None, 5, 0, CallPrice(0, 1)),
    (
        Allowance(max_tokens=10**12, max_cost_micros=10**15),
        Spend(10**9, 10**12),
        Spend(),
        None,
        10**7,
        10**6,
        PRICE,
    ),
    (Allowance(max_tokens=100), Spend(), Spend(), "model adapter a reported more", 1, 1, PRICE),
    (Allowance(max_tokens=100, max_cost_micros=100), Spend(10, 10), Spend(5, 5), None, 50, 5, CallPrice()),
]
