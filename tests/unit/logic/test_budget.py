"""Budget arithmetic: scope, periods, a run's maximum cost, reservations; table tests and properties."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.builders.adapters import build_hosted_adapter
from tests.builders.agentrun import build_run
from tests.builders.budget import build_budget
from tests.builders.defaults import NOW

from jesus.api import BudgetPeriod, format_micros
from jesus.logic.budget import (
    BudgetFigures,
    CostBasis,
    budget_covers,
    covering_budgets,
    current_figures,
    max_run_cost,
    period_window,
    project_reservation,
    reserve,
    settle,
    thresholds_reached,
    token_cost_bound,
    utilization_percent,
)

FULL_WIDTH_ALICE = "\uff41\uff4c\uff49\uff43\uff45"

# --- scope -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "budget_namespace", "run_kwargs", "covers"),
    [
        ({"namespace": "research"}, "platform", {}, True),
        ({"namespace": "research"}, "research", {"namespace": "other"}, False),
        ({"team": "research"}, "research", {}, True),
        ({"team": "research"}, "research", {"team": "ml"}, False),
        ({"team": "research"}, "platform", {}, False),
        ({"user": "alice"}, "research", {}, True),
        ({"user": "alice"}, "research", {"user": "bob"}, False),
        # a user budget is not escaped by writing one's name differently (issue 12's hostile cases)
        ({"user": "alice@example.com"}, "research", {"user": "Alice@Example.COM"}, True),
        ({"user": "alice@example.com"}, "research", {"user": " alice@example.com\t"}, True),
        ({"user": "alice@example.com"}, "research", {"user": f"{FULL_WIDTH_ALICE}@example.com"}, True),
        ({"user": "alice@example.com"}, "research", {"user": "alicia@example.com"}, False),
        ({"runSelector": {"matchLabels": {"app": "x"}}}, "research", {"labels": {"app": "x"}}, True),
        ({"runSelector": {"matchLabels": {"app": "x"}}}, "research", {"labels": {"app": "y"}}, False),
        ({"runSelector": {"matchLabels": {"app": "x"}}}, "research", {"labels": None}, False),
        ({"team": "research"}, None, {"namespace": None}, True),
    ],
)
def test_budget_covers_runs_by_scope(
    scope: dict[str, Any], budget_namespace: str | None, run_kwargs: dict[str, Any], covers: bool
) -> None:
    budget = build_budget(scope=scope, namespace=budget_namespace)
    assert budget_covers(budget, build_run(**run_kwargs)) is covers


def test_a_run_without_namespace_is_in_the_default_one() -> None:
    run = build_run(namespace=None)
    assert budget_covers(build_budget(scope={"namespace": "default"}), run)
    assert budget_covers(build_budget(scope={"namespace": "specs"}), run, default_namespace="specs")
    assert not budget_covers(build_budget(scope={"namespace": "research"}), run)


def test_covering_budgets_keeps_only_covering_ones_in_name_order() -> None:
    budgets = [
        build_budget(name="zeta", scope={"namespace": "research"}),
        build_budget(name="ml", scope={"team": "ml"}),
        build_budget(name="alpha"),
    ]
    assert [b.metadata.name for b in covering_budgets(budgets, build_run())] == ["alpha", "zeta"]


# --- periods ---------------------------------------------------------------------------------


def test_daily_period_is_the_utc_day() -> None:
    moment = datetime(2026, 11, 22, 23, 30, tzinfo=timezone(timedelta(hours=-5)))  # 04:30 UTC next day
    window = period_window(BudgetPeriod.DAILY, moment)
    assert window.start == datetime(2026, 11, 23, tzinfo=UTC)
    assert window.end == datetime(2026, 11, 24, tzinfo=UTC)


def test_monthly_period_is_the_utc_calendar_month() -> None:
    window = period_window(BudgetPeriod.MONTHLY, datetime(2028, 2, 29, 12, tzinfo=UTC))
    assert (window.start, window.end) == (datetime(2028, 2, 1, tzinfo=UTC), datetime(2028, 3, 1, tzinfo=UTC))
    december = period_window(BudgetPeriod.MONTHLY, datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert december.end == datetime(2027, 1, 1, tzinfo=UTC)


def test_total_period_never_ends() -> None:
    window = period_window(BudgetPeriod.TOTAL, NOW)
    assert window.start is None
    assert window.end is None
    assert window.contains(datetime(1970, 1, 1, tzinfo=UTC))


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        period_window(BudgetPeriod.DAILY, datetime(2026, 11, 22))


moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(moment=moments, period=st.sampled_from([BudgetPeriod.DAILY, BudgetPeriod.MONTHLY]))
def test_period_contains_its_moment_and_abuts_the_next(moment: datetime, period: BudgetPeriod) -> None:
    window = period_window(period, moment)
    assert window.contains(moment)
    assert window.start is not None
    assert window.end is not None
    assert (window.start.hour, window.start.minute, window.start.second, window.start.microsecond) == (
        0,
        0,
        0,
        0,
    )
    following = period_window(period, window.end)
    assert following.start == window.end
    assert not window.contains(window.end)
    if period is BudgetPeriod.MONTHLY:
        assert window.start.day == 1
        days = calendar.monthrange(window.start.year, window.start.month)[1]
        assert window.end - window.start == timedelta(days=days)
    else:
        assert window.end - window.start == timedelta(days=1)


# --- the maximum cost of a run ---------------------------------------------------------------


def test_max_cost_bounds_a_run_without_max_tokens() -> None:
    bound = max_run_cost(
        build_run(max_cost="3.50").spec.limits,
        [build_hosted_adapter(name="a", input_price="3", output_price="15")],
    )
    assert (bound.max_micros, bound.basis) == (3_500_000, CostBasis.MAX_COST)


def test_tokens_at_the_most_expensive_price_bound_when_tighter() -> None:
    adapters = [
        build_hosted_adapter(name="cheap", input_price="0.10", output_price="0.40"),
        build_hosted_adapter(name="dear", input_price="3", output_price="15"),
    ]
    bound = max_run_cost(build_run(max_cost="10.00", max_tokens=100_000).spec.limits, adapters)
    # 100 000 tokens at 15 per million is 1.50, under the 10.00 of maxCost.
    assert (bound.max_micros, bound.basis) == (1_500_000, CostBasis.MAX_TOKENS)


def test_max_cost_wins_when_tokens_would_allow_more() -> None:
    bound = max_run_cost(
        build_run(max_cost="1.00", max_tokens=1_000_000).spec.limits,
        [build_hosted_adapter(name="a", input_price="3", output_price="15")],
    )
    assert (bound.max_micros, bound.basis) == (1_000_000, CostBasis.MAX_COST)


def test_token_bound_rounds_up_to_a_whole_micro_unit() -> None:
    # 1 token at 0.000001 per million tokens costs a millionth of a micro-unit: still 1 micro-unit.
    assert (
        token_cost_bound(1, [build_hosted_adapter(name="a", input_price="0.000001", output_price="0")]) == 1
    )
    assert token_cost_bound(1, []) is None


prices = st.integers(min_value=0, max_value=200_000_000).map(lambda micros: format_micros(micros, places=6))


@given(
    price_pairs=st.lists(st.tuples(prices, prices), min_size=1, max_size=4),
    max_tokens=st.integers(min_value=1, max_value=10_000_000),
    max_cost_micros=st.integers(min_value=0, max_value=10**9),
    data=st.data(),
)
def test_no_run_within_its_limits_costs_more_than_its_bound(
    price_pairs: list[tuple[str, str]], max_tokens: int, max_cost_micros: int, data: st.DataObject
) -> None:
    adapters = [
        build_hosted_adapter(name=f"a{i}", input_price=inp, output_price=out)
        for i, (inp, out) in enumerate(price_pairs)
    ]
    limits = build_run(max_cost=format_micros(max_cost_micros, places=6), max_tokens=max_tokens).spec.limits
    bound = max_run_cost(limits, adapters)
    assert bound.max_micros <= max_cost_micros
    # Any split of the token allowance between input and output, on any adapter of the chain, costs
    # at most the bound (or the router stops it at maxCost first).
    adapter = data.draw(st.sampled_from(adapters))
    input_tokens = data.draw(st.integers(min_value=0, max_value=max_tokens))
    output_tokens = max_tokens - input_tokens
    exact_cost_times_million = (
        input_tokens * adapter.spec.pricing.input_micros_per_million
        + output_tokens * adapter.spec.pricing.output_micros_per_million
    )
    assert min(exact_cost_times_million, max_cost_micros * 1_000_000) <= bound.max_micros * 1_000_000


# --- figures and reservations ----------------------------------------------------------------


def test_reservation_reports_figures_after_the_run() -> None:
    budget = build_budget(status={"spentMicros": 70_000_000, "reservedMicros": 4_000_000})
    outcome = project_reservation(budget, 3_000_000, NOW)
    assert outcome.after.reserved_micros == 7_000_000
    assert outcome.after.remaining_micros == 23_000_000
    assert outcome.after.utilization_percent == 77
    assert outcome.newly_crossed == (75,)
    assert outcome.admits


def test_thresholds_already_fired_are_not_new() -> None:
    budget = build_budget(
        status={"spentMicros": 80_000_000, "reservedMicros": 0, "firedThresholds": [75]},
    )
    outcome = project_reservation(budget, 11_000_000, NOW)
    assert outcome.crossed == (75, 90)
    assert outcome.newly_crossed == (90,)


def test_filling_a_budget_exactly_admits_and_one_micro_more_does_not() -> None:
    budget = build_budget(limit="10.00", status={"spentMicros": 7_000_000})
    exact = project_reservation(budget, 3_000_000, NOW)
    assert exact.admits
    assert exact.after.remaining_micros == 0
    assert 100 in exact.newly_crossed
    over = project_reservation(budget, 3_000_001, NOW)
    assert not over.admits
    assert over.after.remaining_micros == -1


def test_an_alert_only_budget_admits_past_its_limit() -> None:
    outcome = project_reservation(build_budget(limit="1.00", deny=False), 2_000_000, NOW)
    assert outcome.after.exceeded
    assert outcome.admits


def test_a_new_period_starts_spending_from_zero_but_keeps_open_reservations() -> None:
    budget = build_budget(
        status={
            "periodStart": "2026-10-01T00:00:00Z",
            "spentMicros": 90_000_000,
            "reservedMicros": 5_000_000,
            "firedThresholds": [75, 90],
        }
    )
    figures = current_figures(budget, NOW)
    assert (figures.spent_micros, figures.reserved_micros, figures.fired_thresholds) == (0, 5_000_000, ())
    same_period = current_figures(budget, datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    assert same_period.spent_micros == 90_000_000


def test_a_budget_without_status_has_spent_nothing() -> None:
    figures = current_figures(build_budget(limit="250.00"), NOW)
    assert figures.limit_micros == figures.remaining_micros == 250_000_000
    assert figures.used_micros == 0


def test_zero_limit() -> None:
    assert utilization_percent(0, 0) == 0
    assert utilization_percent(1, 0) == 100
    assert thresholds_reached(1, 0, [75, 100]) == (75, 100)
    assert thresholds_reached(0, 0, [75, 100]) == ()


def test_negative_amounts_are_refused() -> None:
    figures = BudgetFigures(10, 0, 0, ())
    with pytest.raises(ValueError, match="negative"):
        reserve(figures, -1, [])
    with pytest.raises(ValueError, match="negative"):
        settle(figures, -1, 0)


micro_amounts = st.integers(min_value=0, max_value=10**12)
threshold_sets = st.lists(st.integers(min_value=1, max_value=100), max_size=10, unique=True)


@st.composite
def figures_strategy(draw: st.DrawFn) -> BudgetFigures:
    limit = draw(micro_amounts)
    fired = tuple(sorted(draw(threshold_sets)))
    return BudgetFigures(limit, draw(micro_amounts), draw(micro_amounts), fired)


@given(figures=figures_strategy(), amount=micro_amounts, thresholds=threshold_sets)
def test_reserving_conserves_money(figures: BudgetFigures, amount: int, thresholds: list[int]) -> None:
    after = reserve(figures, amount, thresholds)
    assert after.limit_micros == figures.limit_micros
    assert after.spent_micros == figures.spent_micros
    assert after.reserved_micros == figures.reserved_micros + amount
    assert after.remaining_micros + after.spent_micros + after.reserved_micros == after.limit_micros
    assert after.remaining_micros == figures.remaining_micros - amount
    assert set(figures.fired_thresholds) <= set(after.fired_thresholds)
    assert after.exceeded is (after.used_micros > after.limit_micros)


@given(figures=figures_strategy(), small=micro_amounts, extra=micro_amounts, thresholds=threshold_sets)
def test_reserving_more_never_reaches_fewer_thresholds(
    figures: BudgetFigures, small: int, extra: int, thresholds: list[int]
) -> None:
    less = reserve(figures, small, thresholds)
    more = reserve(figures, small + extra, thresholds)
    assert set(less.fired_thresholds) <= set(more.fired_thresholds)
    assert less.utilization_percent <= more.utilization_percent


@given(used=micro_amounts, limit=st.integers(min_value=1, max_value=10**12), thresholds=threshold_sets)
def test_thresholds_and_percentages_agree_exactly(used: int, limit: int, thresholds: list[int]) -> None:
    percent = utilization_percent(used, limit)
    assert percent * limit <= used * 100 < (percent + 1) * limit
    reached = thresholds_reached(used, limit, thresholds)
    for threshold in thresholds:
        # Reaching a threshold is exact; the rounded-down percentage can only under-report it.
        assert (threshold in reached) is (used > 0 and used * 100 >= threshold * limit)
        if threshold <= percent and used > 0:
            assert threshold in reached


@given(figures=figures_strategy(), amount=micro_amounts, actual=micro_amounts)
def test_settling_releases_the_hold_and_spends_the_actual_cost(
    figures: BudgetFigures, amount: int, actual: int
) -> None:
    held = reserve(figures, amount, [])
    settled = settle(held, amount, actual)
    assert settled.reserved_micros == figures.reserved_micros
    assert settled.spent_micros == figures.spent_micros + actual
    assert settled.remaining_micros == figures.remaining_micros - actual
