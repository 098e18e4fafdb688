"""Budget arithmetic, in integer micro-units: who a Budget covers, its period, what a run may cost,
and what a Budget's figures would be after reserving a run.

Pure: no clock (callers pass `now`), no I/O. The ledger (the only writer of Budget status), the
admission policy input and `jesus plan` all use these functions, so they agree to the micro-unit.
"""

from __future__ import annotations

import calendar
import enum
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jesus.api.agentrun import AgentRun, RunLimits
from jesus.api.budget import Budget, BudgetPeriod
from jesus.api.common import TOKENS_PER_PRICE_UNIT, format_micros
from jesus.api.modeladapter import ModelAdapter
from jesus.logic.clock import parse_time

# Kubernetes puts objects without an explicit namespace into this one.
DEFAULT_NAMESPACE = "default"


def namespace_of(namespace: str | None, default: str = DEFAULT_NAMESPACE) -> str:
    """The effective namespace of an object whose metadata may leave it out (spec files do)."""
    return namespace or default


# --- scope -----------------------------------------------------------------------------------


def budget_covers(budget: Budget, run: AgentRun, *, default_namespace: str = DEFAULT_NAMESPACE) -> bool:
    """Whether `budget` pays for `run`.

    A namespace scope covers every run in the named namespace; team, user and runSelector scopes cover
    runs in the Budget's own namespace whose owner team, owner user (`same_user`) or labels match.
    """
    scope = budget.spec.scope
    run_namespace = namespace_of(run.metadata.namespace, default_namespace)
    if scope.namespace is not None:
        return run_namespace == scope.namespace
    if run_namespace != namespace_of(budget.metadata.namespace, default_namespace):
        return False
    if scope.team is not None:
        return run.spec.owner.team == scope.team
    if scope.user is not None:
        return same_user(run.spec.owner.user, scope.user)
    if scope.run_selector is not None:
        return scope.run_selector.matches(run.metadata.labels or {})
    return False


def covering_budgets(
    budgets: Iterable[Budget], run: AgentRun, *, default_namespace: str = DEFAULT_NAMESPACE
) -> list[Budget]:
    """The Budgets among `budgets` that cover `run`, ordered by namespace and name."""
    covering = [b for b in budgets if budget_covers(b, run, default_namespace=default_namespace)]
    return sorted(
        covering, key=lambda b: (namespace_of(b.metadata.namespace, default_namespace), b.metadata.name or "")
    )


def same_user(a: str, b: str) -> bool:
    """Whether two spellings name the same user: e-mail addresses and SSO names are compared without
    regard to case, width or surrounding blanks, as identity providers compare them, so a run does not
    escape a user's Budget by writing `Alice@Example.com ` for `alice@example.com`."""
    return _user_key(a) == _user_key(b)


def _user_key(user: str) -> str:
    return unicodedata.normalize("NFKC", user).strip().casefold()


# --- period ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodWindow:
    """The half-open interval [start, end) of one budget period, in UTC; both None for Total."""

    start: datetime | None
    end: datetime | None

    def contains(self, moment: datetime) -> bool:
        """Whether `moment` (timezone-aware) falls in this window."""
        moment = _as_utc(moment)
        return (self.start is None or self.start <= moment) and (self.end is None or moment < self.end)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; budget periods are computed in UTC")
    return moment.astimezone(UTC)


def period_window(period: BudgetPeriod, now: datetime) -> PeriodWindow:
    """The period that `now` falls in: the UTC day, the UTC calendar month, or all time (Total)."""
    now = _as_utc(now)
    if period is BudgetPeriod.DAILY:
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return PeriodWindow(start, start + timedelta(days=1))
    if period is BudgetPeriod.MONTHLY:
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        days = calendar.monthrange(start.year, start.month)[1]
        return PeriodWindow(start, start + timedelta(days=days))
    return PeriodWindow(None, None)


# --- the maximum cost of a run ---------------------------------------------------------------


class CostBasis(enum.StrEnum):
    """Which limit bounds a run's cost."""

    MAX_COST = "maxCost"
    """limits.maxCost is the tighter bound (or the only one)."""
    MAX_TOKENS = "maxTokens"
    """limits.maxTokens priced at the most expensive adapter on the route is tighter than maxCost."""


@dataclass(frozen=True)
class RunCostBound:
    """The most a run can cost, in micro-units, and which limit says so."""

    max_micros: int
    basis: CostBasis


def token_cost_bound(max_tokens: int, adapters: Sequence[ModelAdapter]) -> int | None:
    """The most `max_tokens` tokens can cost on any of `adapters`: every token at the highest price
    (input or output) of the most expensive adapter, rounded up to a whole micro-unit. None when there
    are no adapters to price them."""
    if not adapters:
        return None
    highest_per_million = max(
        max(a.spec.pricing.input_micros_per_million, a.spec.pricing.output_micros_per_million)
        for a in adapters
    )
    return -(-max_tokens * highest_per_million // TOKENS_PER_PRICE_UNIT)


def max_run_cost(limits: RunLimits, adapters: Sequence[ModelAdapter]) -> RunCostBound:
    """The most a run with `limits` can cost when routed over `adapters` (the chain's adapters).

    The router stops a run at whichever of limits.maxCost and limits.maxTokens it reaches first, so
    the bound is the smaller of maxCost and maxTokens priced at the most expensive adapter.
    """
    by_cost = limits.max_cost_micros
    by_tokens = token_cost_bound(limits.max_tokens, adapters) if limits.max_tokens is not None else None
    if by_tokens is not None and by_tokens < by_cost:
        return RunCostBound(by_tokens, CostBasis.MAX_TOKENS)
    return RunCostBound(by_cost, CostBasis.MAX_COST)


# --- figures and reservations ----------------------------------------------------------------


@dataclass(frozen=True)
class BudgetFigures:
    """A Budget's figures in its current period, in micro-units."""

    limit_micros: int
    spent_micros: int
    reserved_micros: int
    fired_thresholds: tuple[int, ...]

    @property
    def used_micros(self) -> int:
        """Spent plus reserved: what the period has committed."""
        return self.spent_micros + self.reserved_micros

    @property
    def remaining_micros(self) -> int:
        """limit - spent - reserved; negative when runs overspent."""
        return self.limit_micros - self.used_micros

    @property
    def utilization_percent(self) -> int:
        """Used as a whole percentage of the limit, rounded down (100 for any use of a zero limit)."""
        return utilization_percent(self.used_micros, self.limit_micros)

    @property
    def exceeded(self) -> bool:
        """Whether more is committed than the limit allows (filling it exactly is not exceeding it)."""
        return self.used_micros > self.limit_micros


def utilization_percent(used_micros: int, limit_micros: int) -> int:
    """`used` as a whole percentage of `limit`, rounded down; a zero limit is 100 % used by anything."""
    if limit_micros <= 0:
        return 100 if used_micros > 0 else 0
    return used_micros * 100 // limit_micros


def thresholds_reached(used_micros: int, limit_micros: int, thresholds: Iterable[int]) -> tuple[int, ...]:
    """The thresholds (percentages) that `used` reaches, ascending; exact, with no rounding."""
    if used_micros <= 0:
        return ()
    return tuple(sorted(t for t in set(thresholds) if used_micros * 100 >= t * limit_micros))


def current_figures(budget: Budget, now: datetime) -> BudgetFigures:
    """The Budget's figures in the period `now` falls in.

    Status describes the period that starts at status.periodStart; when `now` is in a later period the
    spending and fired thresholds start again from zero, while open reservations (runs still going)
    carry over.
    """
    status = budget.status
    limit = budget.spec.limit_micros
    if status is None:
        return BudgetFigures(limit, 0, 0, ())
    fired = tuple(sorted(status.fired_thresholds or ()))
    spent = status.spent_micros
    window = period_window(budget.spec.period, now)
    started = parse_time(status.period_start) if status.period_start is not None else None
    if started is not None and window.start is not None and started < window.start:
        spent, fired = 0, ()
    return BudgetFigures(limit, spent, status.reserved_micros, fired)


@dataclass(frozen=True)
class ReservationOutcome:
    """What reserving an amount would do to one Budget."""

    before: BudgetFigures
    after: BudgetFigures
    amount_micros: int
    thresholds: tuple[int, ...]
    """The Budget's alert thresholds, ascending."""
    newly_crossed: tuple[int, ...]
    """Thresholds the reservation reaches that had not fired in this period, ascending."""
    deny_when_exceeded: bool
    """Whether the Budget refuses new runs at 100 %."""

    @property
    def crossed(self) -> tuple[int, ...]:
        """Every threshold the figures reach after the reservation, ascending."""
        return thresholds_reached(self.after.used_micros, self.after.limit_micros, self.thresholds)

    @property
    def admits(self) -> bool:
        """Whether the Budget lets the run in: it is not exceeded afterwards, or it only alerts."""
        return not (self.after.exceeded and self.deny_when_exceeded)


def reserve(figures: BudgetFigures, amount_micros: int, thresholds: Iterable[int]) -> BudgetFigures:
    """The figures after holding `amount_micros` more (a run's maximum cost); thresholds it reaches
    count as fired."""
    if amount_micros < 0:
        raise ValueError(f"cannot reserve a negative amount ({amount_micros} micro-units)")
    reserved = figures.reserved_micros + amount_micros
    reached = thresholds_reached(figures.spent_micros + reserved, figures.limit_micros, thresholds)
    fired = tuple(sorted(set(figures.fired_thresholds) | set(reached)))
    return BudgetFigures(figures.limit_micros, figures.spent_micros, reserved, fired)


def settle(figures: BudgetFigures, reserved_micros: int, actual_micros: int) -> BudgetFigures:
    """The figures after a run that held `reserved_micros` finished having cost `actual_micros`: the
    hold is released and the actual cost is spent (it may exceed the hold if a call overshot)."""
    if reserved_micros < 0 or actual_micros < 0:
        raise ValueError("reserved and actual amounts must not be negative")
    reserved = max(figures.reserved_micros - reserved_micros, 0)
    return BudgetFigures(
        figures.limit_micros, figures.spent_micros + actual_micros, reserved, figures.fired_thresholds
    )


def project_reservation(budget: Budget, amount_micros: int, now: datetime) -> ReservationOutcome:
    """What reserving `amount_micros` against `budget` at `now` would do."""
    thresholds = tuple(sorted(set(budget.spec.thresholds)))
    before = current_figures(budget, now)
    after = reserve(before, amount_micros, thresholds)
    newly = tuple(t for t in after.fired_thresholds if t not in before.fired_thresholds)
    return ReservationOutcome(
        before=before,
        after=after,
        amount_micros=amount_micros,
        thresholds=thresholds,
        newly_crossed=newly,
        deny_when_exceeded=budget.spec.on_exceeded.deny_new_runs,
    )


def refusal_message(budget: Budget, figures: BudgetFigures, amount_micros: int) -> str:
    """Why `budget`, at `figures` (before the run), refuses a run that may cost `amount_micros`.

    The one wording of a budget refusal: admission (`jesus plan`, `jesus run`, the operator) and the
    ledger both use it. Amounts in USD for people, then exact micro-units.
    """
    left = max(figures.remaining_micros, 0)
    return (
        f'budget "{budget.metadata.name}" ({budget.spec.scope.describe()}, {budget.spec.period.value}) '
        f"would be exceeded: {format_micros(left)} USD left of {format_micros(figures.limit_micros)} USD, "
        f"the run may cost up to {format_micros(amount_micros)} USD (micro-units: limit "
        f"{figures.limit_micros}, spent {figures.spent_micros}, held {figures.reserved_micros}, "
        f"this run {amount_micros})"
    )
