"""Admission as one pure function: every branch of `admit` and `decide`, as a table."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from tests.builders.adapters import standard_adapters
from tests.builders.agentrun import build_run
from tests.builders.budget import spending_budget
from tests.builders.defaults import NOW
from tests.builders.policy import Answer
from tests.builders.routes import build_route
from tests.builders.tables import named_cases

from jesus.api.agentrun import AgentRun, AgentRunPhase
from jesus.api.routepolicy import RoutePolicy
from jesus.logic.admission import (
    NO_POLICY_WARNING,
    AdmissionInputs,
    AdmissionVerdict,
    Outcome,
    admit,
    decide,
    held_on,
)
from jesus.logic.budget import CostBasis

P = AgentRunPhase


def with_dependencies(run: AgentRun, *names: str) -> AgentRun:
    return run.model_copy(update={"spec": run.spec.model_copy(update={"depends_on": list(names)})})


def route_not_ready() -> RoutePolicy:
    route = build_route()
    return RoutePolicy.model_validate(
        {
            **route.to_kubernetes(),
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "NoReadyAdapter",
                        "message": "no adapter of the chain is ready",
                        "lastTransitionTime": "2026-11-22T04:00:00Z",
                    }
                ]
            },
        }
    )


def inputs(
    *,
    run: AgentRun | None = None,
    route: RoutePolicy | bool | None = True,
    budget_limit: str = "100.00",
    deny: bool = True,
    phases: Mapping[str, AgentRunPhase | None] | None = None,
) -> AdmissionInputs:
    return AdmissionInputs(
        run=run or build_run(),
        route=build_route() if route is True else (route or None),
        adapters=standard_adapters(),
        budgets=[spending_budget(limit=budget_limit, deny=deny)],
        dependency_phases=phases,
        now=NOW,
        source="specs",
    )


DEPENDENT = with_dependencies(build_run(), "first", "second")

# (case, inputs, outcome, reason, a fragment of the first reason)
ADMIT_TABLE = [
    ("dependency failed", inputs(run=DEPENDENT, phases={"first": P.SUCCEEDED, "second": P.DENIED}),
     Outcome.FAILED, "DependencyFailed", "failed or denied: second"),
    ("dependency missing", inputs(run=DEPENDENT, phases={"first": P.SUCCEEDED, "second": None}),
     Outcome.WAITING, "WaitingForDependencies", "not found: second"),
    ("dependency running", inputs(run=DEPENDENT, phases={"first": P.RUNNING, "second": P.SUCCEEDED}),
     Outcome.WAITING, "WaitingForDependencies", "not finished: first"),
    ("dependencies not known (jesus run / plan)", inputs(run=DEPENDENT, phases=None),
     Outcome.ASK_POLICY, "PolicyAllowed", None),
    ("dependencies succeeded", inputs(run=DEPENDENT, phases={"first": P.SUCCEEDED, "second": P.SUCCEEDED}),
     Outcome.ASK_POLICY, "PolicyAllowed", None),
    ("route missing", inputs(route=None), Outcome.WAITING, "RoutePolicyNotFound",
     "RoutePolicy default does not exist"),
    ("route not ready", inputs(route=route_not_ready()), Outcome.WAITING, "NoReadyAdapter",
     "no adapter of the chain is ready"),
    ("budget exceeded", inputs(budget_limit="16.00"), Outcome.WAITING, "BudgetExceeded",
     'budget "research-monthly" (team=research, Monthly) would be exceeded: 1.00 USD left of 16.00 USD'),
    ("budget exceeded but only alerts", inputs(budget_limit="16.00", deny=False),
     Outcome.ASK_POLICY, "PolicyAllowed", None),
    ("budget filled exactly", inputs(budget_limit="18.00"), Outcome.ASK_POLICY, "PolicyAllowed", None),
]  # fmt: skip


@named_cases(("given", "outcome", "reason", "why"), ADMIT_TABLE)
def test_admit(given: AdmissionInputs, outcome: Outcome, reason: str, why: str | None) -> None:
    verdict = admit(given)
    assert (verdict.outcome, verdict.reason) == (outcome, reason)
    if why is None:
        assert verdict.reasons == ()
    else:
        assert why in verdict.reasons[0]
    assert verdict.summary
    assert not verdict.outcome.final or verdict.outcome in (Outcome.FAILED, Outcome.DENIED)


def test_a_run_that_reaches_the_budgets_carries_its_cost_budgets_and_policy_input() -> None:
    verdict = admit(inputs())
    assert verdict.max_cost is not None
    assert (verdict.max_cost.max_micros, verdict.max_cost.basis) == (3_000_000, CostBasis.MAX_COST)
    assert [c.key for c in verdict.budgets] == [("research", "research-monthly")]
    assert verdict.budgets[0].projection.after.used_micros == 18_000_000
    assert verdict.policy_input is not None
    assert verdict.policy_input["run"]["cost"]["maxMicros"] == verdict.amount_micros
    assert verdict.policy_input["cluster"]["now"] == "2026-11-22T04:00:00Z"
    assert held_on(verdict) == "reserved 3.00 on research/research-monthly"


def test_a_budget_refusal_states_the_exact_figures_too() -> None:
    (why,) = admit(inputs(budget_limit="16.00")).reasons
    assert "the run may cost up to 3.00 USD" in why
    assert "(micro-units: limit 16000000, spent 10000000, held 5000000, this run 3000000)" in why


def test_a_run_no_budget_covers_holds_nothing() -> None:
    verdict = admit(inputs(run=build_run(team="elsewhere")))
    assert (verdict.outcome, verdict.budgets) == (Outcome.ASK_POLICY, ())
    assert held_on(verdict) == "no Budget covers this run"


def test_the_time_is_an_argument() -> None:
    later = AdmissionInputs(**{**inputs().__dict__, "now": NOW.replace(month=12)})
    # In December the November spending no longer counts; the decision follows the clock it is given.
    assert admit(later).budgets[0].projection.before.spent_micros == 0
    assert admit(inputs()).budgets[0].projection.before.spent_micros == 10_000_000


ASKING = admit(inputs())
WAITING_FOR_MONEY = admit(inputs(budget_limit="16.00"))

# (case, verdict before, answer, outcome, reason, reasons, warnings)
DECIDE_TABLE = [
    ("allowed", ASKING, Answer(True, warnings=("w",)), Outcome.ADMITTED, "PolicyAllowed", (), ("w",)),
    ("denied", ASKING, Answer(False, ("too dear", "wrong model")), Outcome.DENIED, "PolicyDenied",
     ("too dear", "wrong model"), ()),
    ("denied without a reason", ASKING, Answer(False), Outcome.DENIED, "PolicyDenied",
     ("denied by policy",), ()),
    ("no decision", ASKING, Answer(False, ("no policy decision (t): down",), error="down"), Outcome.WAITING,
     "PolicyUnavailable", ("no policy decision (t): down",), ()),
    ("no engine configured", ASKING, None, Outcome.ADMITTED, "PolicyAllowed", (), (NO_POLICY_WARNING,)),
    ("already waiting for money", WAITING_FOR_MONEY, Answer(True), Outcome.WAITING, "BudgetExceeded",
     WAITING_FOR_MONEY.reasons, ()),
]  # fmt: skip


@named_cases(("before", "answer", "outcome", "reason", "reasons", "warnings"), DECIDE_TABLE)
def test_decide(
    before: AdmissionVerdict,
    answer: Answer | None,
    outcome: Outcome,
    reason: str,
    reasons: tuple[str, ...],
    warnings: tuple[str, ...],
) -> None:
    verdict = decide(before, answer)
    assert (verdict.outcome, verdict.reason, verdict.reasons, verdict.warnings) == (
        outcome,
        reason,
        reasons,
        warnings,
    )
    assert verdict.decided == (reason != "PolicyUnavailable")
    assert verdict.admitted == (outcome is Outcome.ADMITTED)
    if answer is not None and before.outcome is Outcome.ASK_POLICY:
        assert verdict.policy is answer
    # The figures decided on stay with the verdict whatever the policy says.
    assert (verdict.max_cost, verdict.budgets, verdict.policy_input) == (
        before.max_cost,
        before.budgets,
        before.policy_input,
    )


@pytest.mark.parametrize(
    ("answer", "summary"),
    [
        (Answer(True), "admitted"),
        (Answer(False, ("no",)), "denied by policy: no"),
        (Answer(False, ("x",), error="down"), "no policy decision, not admitted (fails closed): down"),
    ],
)
def test_the_summary_says_what_happened(answer: Answer, summary: str) -> None:
    assert decide(ASKING, answer).summary == summary
