"""A run's running account in this process's memory: its allowance, what it has spent and reserved.

The single-replica default (`MemoryAccountStore` hands these out); replicas that share one allowance use
`jesus.router.redis_store` instead. Both decide with the same pure functions (`jesus.logic.allowance`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jesus.logic.allowance import (
    Allowance,
    AllowanceDecision,
    CallPrice,
    Reservation,
    Spend,
    admit_to_account,
    allowance_exceeded,
    overrun_to_note,
)

__all__ = ["Reservation", "RunLedger"]


@dataclass(slots=True)
class RunLedger:
    """The allowance of one run and its spending, enforced call by call (a `RunAccount`).

    Every call reserves its worst case at admission (a true upper bound, ADR 14) and holds it until it
    ends, so concurrent calls of one run cannot together pass the allowance. A call whose reported usage
    goes beyond its reservation is charged in full (the spend is real) and `overrun` says so; the run's
    further calls are refused, since its spending is no longer bounded. Calls leave no trace here but
    their sums: a call's record goes back to its caller.
    """

    run: str
    allowance: Allowance = field(default_factory=Allowance)
    spent: Spend = field(default_factory=Spend)
    reserved: Spend = field(default_factory=Spend)
    overrun: str | None = None

    async def admit(
        self, *, requested_output_tokens: int, max_input_tokens: int, price: CallPrice
    ) -> tuple[AllowanceDecision, Reservation | None]:
        """Decide whether a call fits; when it does, reserve its worst case."""
        decision = admit_to_account(
            self.allowance,
            self.spent,
            self.reserved,
            self.overrun,
            requested_output_tokens=requested_output_tokens,
            max_input_tokens=max_input_tokens,
            price=price,
        )
        reservation = decision.reservation
        if reservation is not None:
            self.reserved = self.reserved.plus(reservation.tokens, reservation.cost_micros)
        return decision, reservation

    async def release(self, reservation: Reservation) -> None:
        """Give back the reservation of a call that ended with nothing to charge."""
        self.reserved = self.reserved.plus(-reservation.tokens, -reservation.cost_micros)

    async def settle(
        self, reservation: Reservation, input_tokens: int, output_tokens: int, cost: int, *, adapter: str
    ) -> str | None:
        """Charge what a call reported and give its reservation back, and note an overrun of the
        reservation (the first one is kept) when the run has an allowance for it to break; why the run
        may not go on now, or None."""
        self.spent = self.spent.plus(input_tokens + output_tokens, cost)
        self.reserved = self.reserved.plus(-reservation.tokens, -reservation.cost_micros)
        note = overrun_to_note(
            self.allowance, self.overrun, reservation, input_tokens, output_tokens, cost, adapter=adapter
        )
        if note is not None:
            self.overrun = note
        return self.exceeded()

    async def metered(self) -> tuple[Spend, Spend] | None:
        """What the run has spent and what its calls in flight hold reserved."""
        return self.spent, self.reserved

    def exceeded(self) -> str | None:
        """Why the run may not go on: over its allowance, or a call went beyond its reservation; None
        when neither."""
        return allowance_exceeded(self.allowance, self.spent) or self.overrun
