"""A run's running account: its allowance, what it has spent and reserved, and every call it made."""

from __future__ import annotations

from dataclasses import dataclass, field

from jesus.logic.allowance import (
    Allowance,
    AllowanceDecision,
    CallPrice,
    Reservation,
    Spend,
    admit_call,
    allowance_exceeded,
    reservation_overrun,
)
from jesus.router.records import CallRecord

__all__ = ["Reservation", "RunLedger"]


@dataclass(slots=True)
class RunLedger:
    """The allowance of one run and its spending, enforced call by call.

    Every call reserves its worst case at admission (a true upper bound, ADR 14) and holds it until it
    ends, so concurrent calls of one run cannot together pass the allowance. A call whose reported usage
    goes beyond its reservation is charged in full (the spend is real) and `overrun` says so; the run's
    further calls are refused, since its spending is no longer bounded.
    """

    run: str
    allowance: Allowance = field(default_factory=Allowance)
    spent: Spend = field(default_factory=Spend)
    reserved: Spend = field(default_factory=Spend)
    calls: list[CallRecord] = field(default_factory=list)
    overrun: str | None = None

    def admit(
        self, *, requested_output_tokens: int, max_input_tokens: int, price: CallPrice
    ) -> tuple[AllowanceDecision, Reservation | None]:
        """Decide whether a call fits; when it does, reserve its worst case."""
        if self.overrun is not None:
            return AllowanceDecision(False, reason=f"further calls refused: {self.overrun}"), None
        committed = self.spent.plus(self.reserved.tokens, self.reserved.cost_micros)
        decision = admit_call(
            self.allowance,
            committed,
            requested_output_tokens=requested_output_tokens,
            max_input_tokens=max_input_tokens,
            price=price,
        )
        reservation = decision.reservation
        if reservation is not None:
            self.reserved = self.reserved.plus(reservation.tokens, reservation.cost_micros)
        return decision, reservation

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation once its call has ended (its actual usage is charged separately)."""
        self.reserved = self.reserved.plus(-reservation.tokens, -reservation.cost_micros)

    def charge(self, tokens: int, cost: int) -> None:
        """Add what a call actually consumed."""
        self.spent = self.spent.plus(tokens, cost)

    def settle(
        self, reservation: Reservation, input_tokens: int, output_tokens: int, cost: int, *, adapter: str
    ) -> None:
        """Charge what a call reported, and note an overrun of its reservation (the first one is kept)
        when the run has an allowance for it to break."""
        self.charge(input_tokens + output_tokens, cost)
        if self.overrun is not None or self.allowance == Allowance():
            return
        overrun = reservation_overrun(reservation, input_tokens, output_tokens, cost)
        if overrun is not None:
            self.overrun = (
                f"model adapter {adapter} reported more than the call's reserved worst case ({overrun}); "
                "the spend is charged, but the allowance can no longer bound the run"
            )

    def exceeded(self) -> str | None:
        """Why the run may not go on: over its allowance, or a call went beyond its reservation; None
        when neither."""
        return allowance_exceeded(self.allowance, self.spent) or self.overrun
