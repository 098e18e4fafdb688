"""The ledger's operations on Budget status: idempotent by run UID, never overspending, thresholds
firing once per period, periods rolling over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.builders.budget import build_budget

from jesus.api.budget import Budget
from jesus.logic import ledger
from jesus.logic.ledger import RunKey

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def key(n: int) -> RunKey:
    return RunKey("research", f"run-{n}", f"uid-{n}")


def daily(limit: str = "1.00", thresholds: list[int] | None = None) -> Budget:
    return build_budget(period="Daily", limit=limit, thresholds=thresholds or [75, 90, 100])


def test_reserving_twice_holds_once() -> None:
    budget, first = ledger.reserve(daily(), key(1), 400_000, NOW)
    again, second = ledger.reserve(budget, key(1), 400_000, NOW)
    assert first.changed
    assert not second.changed
    assert again.status == budget.status
    assert budget.status is not None
    assert budget.status.reserved_micros == 400_000


def test_a_run_that_does_not_fit_is_refused_with_the_figures_and_holds_nothing() -> None:
    budget, _ = ledger.reserve(daily(), key(1), 800_000, NOW)
    refused, result = ledger.reserve(budget, key(2), 300_000, NOW)
    assert not result.admitted
    assert "800000" in result.message
    assert "300000" in result.message
    assert refused.status == budget.status


def test_settling_spends_the_actual_cost_once_and_drops_the_hold() -> None:
    budget, _ = ledger.reserve(daily(), key(1), 500_000, NOW)
    settled, first = ledger.settle(budget, key(1), 123_456, NOW)
    again, second = ledger.settle(settled, key(1), 123_456, NOW)
    assert first.changed
    assert not second.changed
    assert again.status is not None
    assert (again.status.spent_micros, again.status.reserved_micros) == (123_456, 0)
    assert again.status.remaining_micros == 1_000_000 - 123_456
    assert not again.status.reservations


def test_a_recreated_run_with_the_same_name_is_a_new_reservation() -> None:
    budget, _ = ledger.reserve(daily(), key(1), 100_000, NOW)
    stranger = RunKey("research", "run-1", "another-uid")
    unchanged, result = ledger.settle(budget, stranger, 50_000, NOW)
    assert not result.changed
    assert unchanged.status == budget.status


def test_thresholds_fire_once_per_period_and_roll_over_with_it() -> None:
    budget, first = ledger.reserve(daily(), key(1), 760_000, NOW)
    assert first.newly_fired == (75,)
    budget, _ = ledger.settle(budget, key(1), 0, NOW)
    budget, second = ledger.reserve(budget, key(2), 800_000, NOW)
    assert second.newly_fired == ()  # 75 % already fired today
    budget, third = ledger.reserve(budget, key(3), 200_000, NOW)
    assert third.newly_fired == (90, 100)
    assert budget.status is not None
    assert budget.status.fired_thresholds == [75, 90, 100]
    tomorrow = NOW + timedelta(days=1)
    rolled, changed = ledger.refresh(budget, tomorrow)
    assert changed
    assert rolled.status is not None
    assert rolled.status.fired_thresholds is None
    assert rolled.status.spent_micros == 0
    assert rolled.status.reserved_micros == 1_000_000  # runs still going carry their holds over
    assert rolled.status.period_start == "2026-11-23T00:00:00Z"


def test_a_decision_sees_the_figures_without_the_runs_own_hold() -> None:
    budget, _ = ledger.reserve(daily(), key(1), 300_000, NOW)
    budget, _ = ledger.reserve(budget, key(2), 200_000, NOW)
    seen = ledger.exclude_run(budget, key(1))
    assert seen.status is not None
    assert seen.status.reserved_micros == 200_000
    assert [r.run for r in seen.status.reservations or []] == ["run-2"]
    assert ledger.exclude_run(seen, key(1)) == seen


def test_conditions_say_when_the_limit_is_reached() -> None:
    budget, _ = ledger.reserve(daily(), key(1), 1_000_000, NOW)
    assert budget.status is not None
    exceeded = next(c for c in budget.status.conditions or [] if c.type == "Exceeded")
    assert (exceeded.status, exceeded.reason) == ("True", "LimitReached")


operations = st.lists(
    st.tuples(st.sampled_from(["reserve", "settle", "release"]), st.integers(0, 7), st.integers(0, 600_000)),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_no_sequence_of_operations_holds_more_than_the_limit_or_charges_a_run_twice(
    steps: list[tuple[str, int, int]],
) -> None:
    budget = daily()
    charged: dict[str, int] = {}
    held: dict[str, int] = {}
    for operation, run, amount in steps:
        run_key = key(run)
        if operation == "reserve":
            budget, result = ledger.reserve(budget, run_key, amount, NOW)
            if result.changed:
                held[run_key.uid] = amount
        elif operation == "settle":
            budget, result = ledger.settle(budget, run_key, amount, NOW)
            if result.changed:
                charged[run_key.uid] = charged.get(run_key.uid, 0) + amount
                held.pop(run_key.uid)
        else:
            budget, result = ledger.release(budget, run_key, NOW)
            if result.changed:
                held.pop(run_key.uid)
        status = budget.status
        if status is None:
            continue
        assert status.reserved_micros == sum(held.values())
        assert status.spent_micros == sum(charged.values())
        # Holds never push past the limit on their own (actual costs may overshoot a hold, never a hold).
        assert status.reserved_micros <= 1_000_000
    assert all(count >= 0 for count in charged.values())
