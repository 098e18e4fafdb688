"""Runs waiting for money: which a Budget wakes, oldest first, as far as its money goes."""

from __future__ import annotations

from collections.abc import Hashable

from jesus.logic.waiting import BudgetWaits, Inputs, WaitingRun

TEAM = ("ns", "team")
ORG = ("ns", "org")


def waiting(
    name: str, created: str, amount: int, *budgets: tuple[str, str], fingerprint: Hashable = 1
) -> WaitingRun:
    return WaitingRun("ns", name, created, amount, budgets or (TEAM,), fingerprint)


def test_wakes_the_oldest_runs_that_fit_what_is_left() -> None:
    waits = BudgetWaits()
    waits.wait(waiting("third", "2026-11-22T10:00:03Z", 30))
    waits.wait(waiting("first", "2026-11-22T10:00:01Z", 60))
    waits.wait(waiting("second", "2026-11-22T10:00:02Z", 60))
    assert waits.fitting(TEAM, 100) == [("ns", "first"), ("ns", "third")]
    assert waits.fitting(TEAM, 59) == [("ns", "third")]
    assert waits.fitting(TEAM, 0) == []
    assert waits.fitting(ORG, 1000) == []


def test_a_run_is_found_under_each_of_its_budgets_until_forgotten() -> None:
    waits = BudgetWaits()
    waits.wait(waiting("both", "2026-11-22T10:00:00Z", 10, TEAM, ORG))
    assert waits.fitting(TEAM, 10) == [("ns", "both")]
    assert waits.fitting(ORG, 10) == [("ns", "both")]
    waits.forget("ns", "both")
    assert (waits.fitting(TEAM, 10), waits.fitting(ORG, 10), len(waits)) == ([], [], 0)
    waits.forget("ns", "both")  # forgetting twice is harmless


def test_a_new_refusal_replaces_the_old_one() -> None:
    waits = BudgetWaits()
    waits.wait(waiting("run", "2026-11-22T10:00:00Z", 10, TEAM, fingerprint="before"))
    waits.wait(waiting("run", "2026-11-22T10:00:00Z", 50, ORG, fingerprint="after"))
    assert waits.fitting(TEAM, 100) == []
    assert waits.fitting(ORG, 49) == []
    assert waits.fitting(ORG, 50) == [("ns", "run")]
    found = waits.get("ns", "run")
    assert found is not None and found.fingerprint == "after"
    assert len(waits) == 1


def inputs(budgets: dict[tuple[str, str], str], generation: int = 1) -> Inputs:
    return Inputs(generation, (("team", "a"),), "7", (("steady", "3"),), budgets)


def test_a_refusal_stands_until_something_it_depends_on_changes() -> None:
    before = inputs({TEAM: "10", ORG: "20"}).fingerprint([TEAM])
    assert inputs({TEAM: "10", ORG: "21"}).fingerprint([TEAM]) == before  # a Budget not covering it
    assert inputs({TEAM: "10", ORG: "20", ("ns", "new"): "1"}).fingerprint([TEAM]) == before
    assert inputs({TEAM: "11", ORG: "20"}).fingerprint([TEAM]) != before  # its Budget changed
    assert inputs({ORG: "20"}).fingerprint([TEAM]) != before  # its Budget was deleted
    assert inputs({TEAM: "10", ORG: "20"}, generation=2).fingerprint([TEAM]) != before  # its spec changed


def test_a_higher_priority_is_woken_before_an_older_lower_one_and_age_breaks_ties() -> None:
    waits = BudgetWaits()
    waits.wait(WaitingRun("ns", "old-batch", "2026-11-22T10:00:00Z", 40, (TEAM,), 1, priority=0))
    waits.wait(WaitingRun("ns", "new-urgent", "2026-11-22T10:05:00Z", 40, (TEAM,), 1, priority=100))
    waits.wait(WaitingRun("ns", "older-urgent", "2026-11-22T10:04:00Z", 40, (TEAM,), 1, priority=100))
    waits.wait(WaitingRun("ns", "background", "2026-11-22T09:00:00Z", 10, (TEAM,), 1, priority=-100))
    assert waits.fitting(TEAM, 80) == [("ns", "older-urgent"), ("ns", "new-urgent")]
    # What the higher lanes cannot use goes down the lanes, never idle: 50 left after one urgent run.
    assert waits.fitting(TEAM, 90) == [("ns", "older-urgent"), ("ns", "new-urgent"), ("ns", "background")]
    assert waits.fitting(TEAM, 39) == [("ns", "background")]
