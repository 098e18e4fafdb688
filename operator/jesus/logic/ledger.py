"""The budget ledger's operations on a Budget's status: reserve, release, settle, roll over.

Each operation is idempotent, keyed by the run's UID, so a reconcile that is killed and rerun never
charges twice or loses a charge: a reservation present in status means "held"; its removal together
with the addition of the actual cost to `spentMicros` happens in one status write, so "absent" after
admission means "settled".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jesus.api.budget import Budget, BudgetConditionType, BudgetReason, BudgetStatus, Reservation
from jesus.logic.budget import (
    BudgetFigures,
    ReservationOutcome,
    current_figures,
    period_window,
    refusal_message,
    thresholds_reached,
)
from jesus.logic.clock import format_time
from jesus.logic.conditions import set_condition


@dataclass(frozen=True)
class RunKey:
    """The run a ledger entry belongs to."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class LedgerResult:
    """What one operation did to one Budget."""

    budget: str
    admitted: bool
    figures: BudgetFigures
    newly_fired: tuple[int, ...] = ()
    changed: bool = False
    message: str = ""


def _reservations(budget: Budget) -> list[Reservation]:
    return list(budget.status.reservations or []) if budget.status else []


def find_reservation(budget: Budget, run: RunKey) -> Reservation | None:
    """The open reservation of `run` (same namespace, name and UID), or None."""
    return next(
        (
            r
            for r in _reservations(budget)
            if r.run == run.name and r.namespace == run.namespace and r.uid in (run.uid, None)
        ),
        None,
    )


def _with_figures(
    budget: Budget, figures: BudgetFigures, reservations: list[Reservation], now: datetime
) -> Budget:
    """`budget` with a status that shows `figures` and `reservations`, conditions brought up to date."""
    previous = budget.status or BudgetStatus()
    window = period_window(budget.spec.period, now)
    period_start = format_time(window.start) if window.start is not None else previous.period_start
    generation = budget.metadata.generation
    conditions = previous.conditions
    exceeded = figures.utilization_percent >= 100
    conditions = set_condition(
        conditions,
        BudgetConditionType.EXCEEDED,
        exceeded,
        BudgetReason.LIMIT_REACHED if exceeded else BudgetReason.WITHIN_LIMIT,
        f"{figures.utilization_percent}% of the limit is spent or held",
        generation,
        now,
    )
    fired = sorted(figures.fired_thresholds)
    conditions = set_condition(
        conditions,
        BudgetConditionType.THRESHOLD_REACHED,
        bool(fired),
        BudgetReason.THRESHOLD_CROSSED if fired else BudgetReason.BELOW_THRESHOLDS,
        f"fired this period: {', '.join(f'{t}%' for t in fired)}"
        if fired
        else "no threshold reached this period",
        generation,
        now,
    )
    conditions = set_condition(
        conditions,
        BudgetConditionType.READY,
        True,
        BudgetReason.LEDGER_UPDATED,
        "ledger is current",
        generation,
        now,
    )
    reserved = sum(r.amount_micros for r in reservations)
    status = BudgetStatus(
        observed_generation=generation,
        conditions=conditions,
        period_start=period_start,
        spent_micros=figures.spent_micros,
        reserved_micros=reserved,
        remaining_micros=figures.limit_micros - figures.spent_micros - reserved,
        utilization_percent=figures.utilization_percent,
        fired_thresholds=fired or None,
    )
    # The list is set after validation: its items are validated Reservations and each operation keeps
    # them unique by run, so checking all of them again on every operation of a batch would make a
    # thousand admissions cost a million checks (the API server still checks the list on the write).
    return budget.model_copy(
        update={"status": status.model_copy(update={"reservations": reservations or None})}
    )


def _figures(
    budget: Budget, reservations: list[Reservation], spent: int, fired: tuple[int, ...]
) -> BudgetFigures:
    return BudgetFigures(budget.spec.limit_micros, spent, sum(r.amount_micros for r in reservations), fired)


def refresh(budget: Budget, now: datetime) -> tuple[Budget, bool]:
    """Roll the period over if it ended and recompute figures and conditions; (budget, whether it changed)."""
    current = current_figures(budget, now)
    reservations = _reservations(budget)
    figures = _figures(budget, reservations, current.spent_micros, current.fired_thresholds)
    updated = _with_figures(budget, figures, reservations, now)
    return updated, updated.status != budget.status


def reserve(budget: Budget, run: RunKey, amount_micros: int, now: datetime) -> tuple[Budget, LedgerResult]:
    """Hold `amount_micros` for `run` unless the Budget would go past its limit and denies new runs."""
    name = budget.metadata.name or ""
    current = current_figures(budget, now)
    reservations = _reservations(budget)
    existing = find_reservation(budget, run)
    if existing is not None:
        figures = _figures(budget, reservations, current.spent_micros, current.fired_thresholds)
        return budget, LedgerResult(name, True, figures, message="already held")
    held = [
        *reservations,
        Reservation(
            namespace=run.namespace,
            run=run.name,
            uid=run.uid,
            amount_micros=amount_micros,
            reserved_at=format_time(now),
        ),
    ]
    used = current.spent_micros + sum(r.amount_micros for r in held)
    limit = budget.spec.limit_micros
    if used > limit and budget.spec.on_exceeded.deny_new_runs:
        figures = _figures(budget, reservations, current.spent_micros, current.fired_thresholds)
        message = refusal_message(budget, figures, amount_micros)
        return budget, LedgerResult(name, False, figures, message=message)
    reached = thresholds_reached(used, limit, budget.spec.thresholds)
    newly = tuple(t for t in reached if t not in current.fired_thresholds)
    fired = tuple(sorted(set(current.fired_thresholds) | set(reached)))
    figures = _figures(budget, held, current.spent_micros, fired)
    updated = _with_figures(budget, figures, held, now)
    return updated, LedgerResult(name, True, figures, newly_fired=newly, changed=True)


def hold_projected(budget: Budget, run: RunKey, outcome: ReservationOutcome, now: datetime) -> Budget:
    """`budget` after `run` took the hold `outcome` projects (`project_reservation`): the figures its
    status states plus the hold, and the hold in the list of reservations.

    Unlike `reserve`, the reserved amount is status.reservedMicros plus the hold, not the sum of the
    listed reservations: a spec file may state figures without listing the runs that hold them, and
    `jesus plan` must not forget that money (in the cluster the two agree).
    """
    previous = budget.status or BudgetStatus()
    window = period_window(budget.spec.period, now)
    after = outcome.after
    reservation = Reservation(
        namespace=run.namespace,
        run=run.name,
        uid=run.uid or None,
        amount_micros=outcome.amount_micros,
        reserved_at=format_time(now),
    )
    status = previous.model_copy(
        update={
            "period_start": format_time(window.start) if window.start is not None else previous.period_start,
            "spent_micros": after.spent_micros,
            "reserved_micros": after.reserved_micros,
            "remaining_micros": after.remaining_micros,
            "utilization_percent": after.utilization_percent,
            "fired_thresholds": list(after.fired_thresholds) or None,
            "reservations": [*(previous.reservations or []), reservation],
        }
    )
    return budget.model_copy(update={"status": status})


def release(budget: Budget, run: RunKey, now: datetime) -> tuple[Budget, LedgerResult]:
    """Drop `run`'s reservation without spending (the run never started)."""
    return settle(budget, run, 0, now)


def settle(budget: Budget, run: RunKey, actual_micros: int, now: datetime) -> tuple[Budget, LedgerResult]:
    """Release `run`'s reservation and spend `actual_micros`, once: without a reservation, nothing changes."""
    name = budget.metadata.name or ""
    current = current_figures(budget, now)
    existing = find_reservation(budget, run)
    reservations = _reservations(budget)
    if existing is None:
        figures = _figures(budget, reservations, current.spent_micros, current.fired_thresholds)
        return budget, LedgerResult(name, True, figures, message="nothing held")
    remaining = [r for r in reservations if r is not existing]
    spent = current.spent_micros + actual_micros
    reached = thresholds_reached(
        spent + sum(r.amount_micros for r in remaining), budget.spec.limit_micros, budget.spec.thresholds
    )
    newly = tuple(t for t in reached if t not in current.fired_thresholds)
    fired = tuple(sorted(set(current.fired_thresholds) | set(reached)))
    figures = _figures(budget, remaining, spent, fired)
    updated = _with_figures(budget, figures, remaining, now)
    return updated, LedgerResult(name, True, figures, newly_fired=newly, changed=True)


def exclude_run(budget: Budget, run: RunKey) -> Budget:
    """`budget` as if `run` held nothing: the figures a decision about `run` must see, also when an
    earlier, interrupted reconcile of the same run already placed its hold."""
    existing = find_reservation(budget, run)
    if existing is None or budget.status is None:
        return budget
    remaining = [r for r in _reservations(budget) if r is not existing]
    status = budget.status.model_copy(
        update={
            "reservations": remaining or None,
            "reserved_micros": max(budget.status.reserved_micros - existing.amount_micros, 0),
            "remaining_micros": budget.status.remaining_micros + existing.amount_micros,
        }
    )
    return budget.model_copy(update={"status": status})
