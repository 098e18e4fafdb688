"""take_holds: an admitted run's hold on its Budgets, so that the next run is decided on running totals."""

from __future__ import annotations

from tests.builders.adapters import standard_adapters
from tests.builders.agentrun import build_run
from tests.builders.budget import spending_budget
from tests.builders.defaults import NOW
from tests.builders.routes import build_route
from tests.unit.logic.test_admission import Answer

from jesus.api.budget import Budget
from jesus.logic.admission import AdmissionInputs, AdmissionVerdict, Outcome, admit, decide, take_holds
from jesus.logic.budget import current_figures
from jesus.logic.ledger import RunKey

ALLOW = Answer(allow=True)


def verdict_for(
    run_name: str, max_cost: str, budgets: list[Budget], answer: Answer = ALLOW
) -> AdmissionVerdict:
    inputs = AdmissionInputs(
        run=build_run(name=run_name, max_cost=max_cost),
        route=build_route(),
        adapters=standard_adapters(),
        budgets=budgets,
        dependency_phases=None,
        now=NOW,
        source="specs",
    )
    return decide(admit(inputs), answer)


def key(name: str) -> RunKey:
    return RunKey("research", name, "")


def test_admitted_run_holds_its_maximum_cost_on_top_of_the_stated_figures() -> None:
    # reservedMicros 5.00 is stated without a list of reservations, as spec files do: it is kept
    budgets = [spending_budget(spent_micros=10_000_000, reserved_micros=5_000_000)]
    verdict = verdict_for("first", "20.00", budgets)
    assert verdict.admitted
    (after,) = take_holds(budgets, verdict, key("first"), NOW)
    figures = current_figures(after, NOW)
    assert (figures.spent_micros, figures.reserved_micros) == (10_000_000, 25_000_000)
    assert after.status is not None
    assert after.status.remaining_micros == 65_000_000
    assert [(r.run, r.amount_micros) for r in after.status.reservations or []] == [("first", 20_000_000)]
    assert budgets[0].status is not None and budgets[0].status.reserved_micros == 5_000_000  # not mutated


def test_two_runs_that_together_overspend_are_not_both_admitted() -> None:
    budgets = [spending_budget(limit="30.00", spent_micros=0, reserved_micros=0)]
    first = verdict_for("first", "20.00", budgets)
    assert first.admitted
    budgets = take_holds(budgets, first, key("first"), NOW)
    second = verdict_for("second", "20.00", budgets)
    assert second.outcome is Outcome.WAITING
    assert second.reason == "BudgetExceeded"
    assert "10.00 USD" in second.reasons[0]  # what the first run left
    # a waiting run holds nothing: a third that fits what is left is admitted
    budgets = take_holds(budgets, second, key("second"), NOW)
    third = verdict_for("third", "10.00", budgets)
    assert third.admitted


def test_denied_run_holds_nothing() -> None:
    budgets = [spending_budget(limit="30.00", spent_micros=0, reserved_micros=0)]
    denied = verdict_for("first", "20.00", budgets, Answer(allow=False, reasons=("no",)))
    assert denied.outcome is Outcome.DENIED
    assert take_holds(budgets, denied, key("first"), NOW) == budgets


def test_budgets_that_do_not_cover_the_run_are_left_alone() -> None:
    other = spending_budget(name="other-team", scope={"team": "support"}, spent_micros=0, reserved_micros=0)
    mine = spending_budget(spent_micros=0, reserved_micros=0)
    verdict = verdict_for("first", "20.00", [other, mine])
    after_other, after_mine = take_holds([other, mine], verdict, key("first"), NOW)
    assert after_other is other
    assert current_figures(after_mine, NOW).reserved_micros == 20_000_000


def test_a_budget_that_only_alerts_keeps_counting_past_its_limit() -> None:
    budgets = [spending_budget(limit="30.00", spent_micros=0, reserved_micros=0, deny=False)]
    for name in ("first", "second"):
        verdict = verdict_for(name, "20.00", budgets)
        assert verdict.admitted
        budgets = take_holds(budgets, verdict, key(name), NOW)
    figures = current_figures(budgets[0], NOW)
    assert figures.reserved_micros == 40_000_000
    assert figures.fired_thresholds == (75, 90, 100)


def test_a_past_period_spends_nothing_in_this_one() -> None:
    stale = spending_budget(limit="30.00", spent_micros=29_000_000, reserved_micros=0)
    assert stale.status is not None
    stale = stale.model_copy(
        update={"status": stale.status.model_copy(update={"period_start": "2026-10-01T00:00:00Z"})}
    )
    verdict = verdict_for("first", "20.00", [stale])
    assert verdict.admitted
    (after,) = take_holds([stale], verdict, key("first"), NOW)
    assert current_figures(after, NOW).used_micros == 20_000_000
