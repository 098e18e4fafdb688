"""A run's running account: its allowance, what it has spent and reserved, and every call it made."""

from __future__ import annotations

from dataclasses import dataclass, field

from jesus.logic.allowance import (
    Allowance,
    AllowanceDecision,
    CallPrice,
    Spend,
    admit_call,
    allowance_exceeded,
    cost_micros,
)
from jesus.router.records import CallRecord


@dataclass(frozen=True, slots=True)
class Reservation:
    """The worst case of one admitted call, held against the allowance until the call ends."""

    tokens: int
    cost_micros: int


@dataclass(slots=True)
class RunLedger:
    """The allowance of one run and its spending, enforced call by call.

    Concurrent calls of one run each reserve their worst case at admission, so two calls in flight
    cannot both spend the last of the allowance.
    """

    run: str
    allowance: Allowance = field(default_factory=Allowance)
    spent: Spend = field(default_factory=Spend)
    reserved: Spend = field(default_factory=Spend)
    calls: list[CallRecord] = field(default_factory=list)

    def admit(
        self, *, requested_output_tokens: int, estimated_input_tokens: int, price: CallPrice
    ) -> tuple[AllowanceDecision, Reservation | None]:
        """Decide whether a call fits; when it does, reserve its worst case."""
        committed = self.spent.plus(self.reserved.tokens, self.reserved.cost_micros)
        decision = admit_call(
            self.allowance,
            committed,
            requested_output_tokens=requested_output_tokens,
            estimated_input_tokens=estimated_input_tokens,
            price=price,
        )
        if not decision.allowed:
            return decision, None
        reservation = Reservation(
            tokens=estimated_input_tokens + decision.max_output_tokens,
            cost_micros=cost_micros(estimated_input_tokens, decision.max_output_tokens, price),
        )
        self.reserved = self.reserved.plus(reservation.tokens, reservation.cost_micros)
        return decision, reservation

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation once its call has ended (its actual usage is charged separately)."""
        self.reserved = self.reserved.plus(-reservation.tokens, -reservation.cost_micros)

    def charge(self, tokens: int, cost: int) -> None:
        """Add what a call actually consumed."""
        self.spent = self.spent.plus(tokens, cost)

    def exceeded(self) -> str | None:
        """Why the run is over its allowance, or None."""
        return allowance_exceeded(self.allowance, self.spent)
