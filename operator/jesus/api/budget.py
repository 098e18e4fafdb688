"""Budget: a spending cap over a scope of runs and a period, with alert thresholds.

Only the operator writes Budget status (the ledger): admission reserves a run's maximum cost against
every Budget that covers it, completion settles the actual cost and releases the rest.
"""

from __future__ import annotations

import enum
import itertools
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from jesus.api.common import (
    ApiModel,
    CommonConditionType,
    Conditions,
    Currency,
    LabelSelector,
    LabelValueName,
    Money,
    ObjectMeta,
    ObjectName,
    Timestamp,
    parse_money,
    present,
)
from jesus.api.rules import CelRule, ListType

KIND = "Budget"
PLURAL = "budgets"

DEFAULT_THRESHOLDS: tuple[int, ...] = (75, 90, 100)


class BudgetPeriod(enum.StrEnum):
    """How long one budget period lasts; periods start at 00:00 UTC (day) or the 1st (month)."""

    DAILY = "Daily"
    MONTHLY = "Monthly"
    TOTAL = "Total"


class BudgetConditionType(enum.StrEnum):
    """Condition types of a Budget."""

    READY = CommonConditionType.READY.value
    EXCEEDED = "Exceeded"
    THRESHOLD_REACHED = "ThresholdReached"


class BudgetReason(enum.StrEnum):
    """Reasons on Budget conditions (and on AgentRun conditions when a budget decides)."""

    WITHIN_LIMIT = "WithinLimit"
    LIMIT_REACHED = "LimitReached"
    THRESHOLD_CROSSED = "ThresholdCrossed"
    BELOW_THRESHOLDS = "BelowThresholds"
    PERIOD_RESET = "PeriodReset"
    LEDGER_UPDATED = "LedgerUpdated"


def _one_scope(scope: BudgetScope) -> bool:
    return sum(present(v) for v in (scope.namespace, scope.team, scope.user, scope.run_selector)) == 1


class BudgetScope(ApiModel):
    """Which runs the budget covers: exactly one of namespace, team, user or runSelector.

    team, user and runSelector cover runs in the Budget's own namespace; namespace covers every run in
    the named namespace, so a platform team can keep namespace caps in one place.
    """

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule=(
                "[has(self.namespace), has(self.team), has(self.user), has(self.runSelector)]"
                ".filter(x, x).size() == 1"
            ),
            message="scope must name exactly one of namespace, team, user or runSelector",
            check=_one_scope,
        ),
    )

    namespace: LabelValueName | None = None
    """Every run in this namespace."""
    team: LabelValueName | None = None
    """Runs whose spec.owner.team is this team."""
    user: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    """Runs whose spec.owner.user is this user."""
    run_selector: LabelSelector | None = None
    """Runs whose labels match this selector."""

    def describe(self) -> str:
        """A short human form, e.g. `team=ml` or `selector`."""
        if self.namespace is not None:
            return f"namespace={self.namespace}"
        if self.team is not None:
            return f"team={self.team}"
        if self.user is not None:
            return f"user={self.user}"
        return "runSelector"


class OnExceeded(ApiModel):
    """What happens when spending reaches 100 % of the limit."""

    deny_new_runs: bool = True
    """Refuse to admit new runs this budget covers."""
    stop_running_runs: bool = False
    """Also stop runs that are already running (their Jobs are deleted)."""


def _sorted_thresholds(thresholds: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(thresholds))


class BudgetSpec(ApiModel):
    """Desired state of a Budget."""

    scope: BudgetScope
    """Which runs the budget covers."""
    period: BudgetPeriod
    """Daily, Monthly, or Total (never resets)."""
    limit: Money
    """The cap, a decimal string in the budget's currency, e.g. "250.00"."""
    currency: Currency = "USD"
    """Currency of the limit; runs are charged in their adapters' pricing currency, which must match."""
    thresholds: Annotated[
        list[Annotated[int, Field(ge=1, le=100)]],
        Field(max_length=10),
        ListType.as_set(),
        CelRule(
            rule="self.isSorted()",
            message="thresholds must be listed in ascending order",
            check=_sorted_thresholds,
        ),
    ] = Field(default_factory=lambda: list(DEFAULT_THRESHOLDS))
    """Percentages of the limit at which an alert fires (a condition, an event and a metric), ascending."""
    on_exceeded: OnExceeded = Field(default_factory=OnExceeded)
    """What happens at 100 %."""

    @property
    def limit_micros(self) -> int:
        """The limit in micro-units."""
        return parse_money(self.limit)


class Reservation(ApiModel):
    """Money held for one admitted run until it completes."""

    namespace: LabelValueName
    """Namespace of the run."""
    run: ObjectName
    """Name of the AgentRun."""
    uid: Annotated[str, Field(max_length=64)] | None = None
    """UID of the AgentRun, so a recreated run with the same name is a new reservation."""
    amount_micros: Annotated[int, Field(ge=0)]
    """Amount held: the run's maximum cost, in micro-units."""
    reserved_at: Timestamp | None = None
    """When the reservation was made."""


class BudgetStatus(ApiModel):
    """The ledger: what the current period has spent and holds, written by the operator only."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this status describes."""
    conditions: Conditions | None = None
    """Ready, ThresholdReached and Exceeded."""
    period_start: Timestamp | None = None
    """Start of the current period."""
    spent_micros: Annotated[int, Field(ge=0)] = 0
    """Settled cost in the current period, in micro-units."""
    reserved_micros: Annotated[int, Field(ge=0)] = 0
    """Cost held for admitted runs that have not completed, in micro-units."""
    remaining_micros: int = 0
    """limit - spent - reserved, in micro-units; negative when runs overspent."""
    utilization_percent: Annotated[int, Field(ge=0)] = 0
    """(spent + reserved) as a whole percentage of the limit, rounded down."""
    fired_thresholds: (
        Annotated[list[Annotated[int, Field(ge=1, le=100)]], Field(max_length=10), ListType.as_set()] | None
    ) = None
    """Thresholds that have fired in the current period."""
    reservations: (
        Annotated[list[Reservation], Field(max_length=10_000), ListType.as_map("namespace", "run")] | None
    ) = None
    """Open reservations, one per admitted run."""


class Budget(ApiModel):
    """A spending cap over a scope of runs and a period, with alert thresholds and an action at 100 %."""

    api_version: Literal["jesus.dev/v1alpha1"] = "jesus.dev/v1alpha1"
    """jesus.dev/v1alpha1"""
    kind: Literal["Budget"] = "Budget"
    """Budget"""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard object metadata."""
    spec: BudgetSpec
    """Desired state."""
    status: BudgetStatus | None = None
    """Observed state (the ledger); written by the operator only."""
