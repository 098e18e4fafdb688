"""Admission: whether an AgentRun may start, decided once for the operator, `jesus run` and `jesus plan`.

One order, documented in docs/admission.md (ADR 0009):

1. **Dependencies**: a dependency that failed or was denied fails the run; unfinished or missing ones
   make it wait. Callers that cannot know the phases (`jesus run`, `jesus plan`) pass None: the step
   is skipped (the policy still sees `dependsOn`).
2. **Route**: the RoutePolicy must exist, and must not report `Ready=False`; otherwise the run waits.
3. **Budgets**: the run's maximum cost is projected on every covering Budget; a run that does not fit
   waits for money (it is not denied: money frees up). The policy is not asked and nothing is held.
4. **Policy**: the engine decides on the input document built from the figures before the run's hold.
   A denial is final; no decision (engine down) is a wait. A denied run never held money.
5. **Reservation** (the operator only): the ledger holds the maximum cost on every covering Budget,
   all or nothing; a Budget that changed since step 3 may still refuse, which is a wait as in step 3.

Asking the policy engine is I/O, so the decision is two pure steps with the question between them:
`admit` goes as far as it can without the engine (a final verdict, or one that asks the policy with
its input document) and `decide` finishes it with the engine's answer. No clock is read here: `now`
is an argument.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from jesus.api.agentrun import AgentRun, AgentRunConditionType, AgentRunPhase, AgentRunReason
from jesus.api.budget import Budget
from jesus.api.common import ConditionStatus, format_micros
from jesus.api.modeladapter import ModelAdapter
from jesus.api.routepolicy import RoutePolicy
from jesus.logic.budget import (
    DEFAULT_NAMESPACE,
    ReservationOutcome,
    RunCostBound,
    covering_budgets,
    max_run_cost,
    project_reservation,
    refusal_message,
)
from jesus.logic.conditions import find_condition
from jesus.logic.ledger import RunKey, hold_projected
from jesus.logic.policy_input import PolicyInput, build_policy_input
from jesus.logic.runs import DependencyState, dependency_state

NO_POLICY_WARNING = "no policy is configured: the run was not checked against admission policies"


class Outcome(enum.StrEnum):
    """Where admission leaves a run."""

    ASK_POLICY = "AskPolicy"
    """Everything but the policy allows the run: ask the engine, then call `decide`."""
    ADMITTED = "Admitted"
    """The run may start (the operator still has the ledger hold the money)."""
    WAITING = "Waiting"
    """Not now: dependencies, the route, money or the policy engine; decided again later."""
    DENIED = "Denied"
    """The policy said no; final."""
    FAILED = "Failed"
    """A dependency failed or was denied; final."""

    @property
    def final(self) -> bool:
        """Whether the run's admission will not be decided again."""
        return self in (Outcome.DENIED, Outcome.FAILED)


class PolicyAnswer(Protocol):
    """The parts of a policy engine's decision admission reads (jesus.policy.Decision has them)."""

    @property
    def allow(self) -> bool: ...

    @property
    def reasons(self) -> tuple[str, ...]: ...

    @property
    def warnings(self) -> tuple[str, ...]: ...

    @property
    def engine(self) -> str: ...

    @property
    def error(self) -> str | None: ...


@dataclass(frozen=True)
class AdmissionInputs:
    """Everything admission reads, observed by the caller before deciding."""

    run: AgentRun
    route: RoutePolicy | None
    """The RoutePolicy the run names, None when it does not exist."""
    adapters: Mapping[str, ModelAdapter]
    """ModelAdapters of the run's namespace, by name."""
    budgets: Sequence[Budget]
    """Budgets that might cover the run, with the figures to decide on (without this run's own hold)."""
    dependency_phases: Mapping[str, AgentRunPhase | None] | None
    """The phase of each dependsOn run (None: it does not exist); None skips the dependency step."""
    now: datetime
    source: str
    """Where the figures come from: "cluster" or "specs" (the policy input says so)."""
    default_namespace: str = DEFAULT_NAMESPACE


@dataclass(frozen=True)
class BudgetCheck:
    """One covering Budget and what holding the run's maximum cost would do to it."""

    budget: Budget
    projection: ReservationOutcome

    @property
    def key(self) -> tuple[str, str]:
        """(namespace, name) of the Budget."""
        return (self.budget.metadata.namespace or "", self.budget.metadata.name or "")


@dataclass(frozen=True)
class AdmissionVerdict:
    """What admission decided, why, and the figures it decided on."""

    outcome: Outcome
    condition: str
    """The AgentRun condition that carries the decision (Admitted, DependenciesReady, ...)."""
    reason: str
    """A CamelCase reason (AgentRunReason, or the RoutePolicy's own reason)."""
    reasons: tuple[str, ...]
    """Why, in sentences (the policy's reasons, the budget refusals, ...)."""
    summary: str
    """One line for a person: the run's phase message in the cluster, the verdict in a plan."""
    warnings: tuple[str, ...] = ()
    dependencies: DependencyState | None = None
    max_cost: RunCostBound | None = None
    budgets: tuple[BudgetCheck, ...] = ()
    """The covering Budgets, ordered by namespace and name: the holds an admitted run takes."""
    policy_input: PolicyInput | None = None
    policy: PolicyAnswer | None = None
    """The engine's answer, when it was asked."""

    @property
    def admitted(self) -> bool:
        """Whether the run may start."""
        return self.outcome is Outcome.ADMITTED

    @property
    def decided(self) -> bool:
        """False only when the policy engine gave no decision (the run fails closed)."""
        return self.reason != AgentRunReason.POLICY_UNAVAILABLE

    @property
    def amount_micros(self) -> int:
        """The run's maximum cost: what each covering Budget holds for it."""
        return self.max_cost.max_micros if self.max_cost is not None else 0


C = AgentRunConditionType
R = AgentRunReason


def admit(inputs: AdmissionInputs) -> AdmissionVerdict:
    """Steps 1 to 3 (dependencies, route, budgets): a verdict that is final or waits, or one that
    asks the policy (Outcome.ASK_POLICY) for `decide` to finish. Every verdict carries the figures:
    the maximum cost, the covering Budgets' projections and the policy input document."""
    asking = _figures(inputs)
    for step in (_dependencies, _route, _budgets):
        verdict = step(inputs, asking)
        if verdict is not None:
            return verdict
    return asking


def _figures(inputs: AdmissionInputs) -> AdmissionVerdict:
    route, run = inputs.route, inputs.run
    entries = route.spec.chain if route is not None else []
    chain = [inputs.adapters[e.adapter_ref] for e in entries if e.adapter_ref in inputs.adapters]
    cost = max_run_cost(run.spec.limits, chain)
    checks = tuple(
        BudgetCheck(budget, project_reservation(budget, cost.max_micros, inputs.now))
        for budget in covering_budgets(inputs.budgets, run, default_namespace=inputs.default_namespace)
    )
    policy_input = build_policy_input(
        run,
        route_policy=route,
        adapters=inputs.adapters,
        budgets=inputs.budgets,
        now=inputs.now,
        source=inputs.source,
        default_namespace=inputs.default_namespace,
    )
    known = inputs.dependency_phases is not None and run.spec.depends_on
    return AdmissionVerdict(
        Outcome.ASK_POLICY,
        C.POLICY_ALLOWED,
        R.POLICY_ALLOWED,
        (),
        "waiting for the policy decision",
        dependencies=dependency_state(run, inputs.dependency_phases or {}) if known else None,
        max_cost=cost,
        budgets=checks,
        policy_input=policy_input,
    )


def _dependencies(inputs: AdmissionInputs, asking: AdmissionVerdict) -> AdmissionVerdict | None:
    state = asking.dependencies
    if state is None or state.ready:
        return None
    why = state.describe()
    if state.failed:
        outcome, reason, summary = Outcome.FAILED, R.DEPENDENCY_FAILED, f"a dependency did not succeed: {why}"
    else:
        outcome, reason, summary = (
            Outcome.WAITING,
            R.WAITING_FOR_DEPENDENCIES,
            f"waiting for dependencies: {why}",
        )
    return replace(
        asking,
        outcome=outcome,
        condition=C.DEPENDENCIES_READY,
        reason=reason,
        reasons=(why,),
        summary=summary,
    )


def _route(inputs: AdmissionInputs, asking: AdmissionVerdict) -> AdmissionVerdict | None:
    name = inputs.run.spec.route_policy_ref.name
    if inputs.route is None:
        return _waiting(
            asking,
            C.ADMITTED,
            R.ROUTE_POLICY_NOT_FOUND,
            (f"RoutePolicy {name} does not exist",),
            f"waiting for RoutePolicy {name}",
        )
    status = inputs.route.status
    ready = find_condition(status.conditions if status else None, "Ready")
    if ready is not None and ready.status == ConditionStatus.FALSE:
        # The RoutePolicy's reconciler found no ready adapter; its reason says which case.
        return _waiting(
            asking,
            C.ADMITTED,
            ready.reason,
            (f"RoutePolicy {name}: {ready.message}",),
            f"waiting for a ready adapter on RoutePolicy {name}: {ready.message}",
        )
    return None


def _budgets(inputs: AdmissionInputs, asking: AdmissionVerdict) -> AdmissionVerdict | None:
    refusals = tuple(
        refusal_message(c.budget, c.projection.before, asking.amount_micros)
        for c in asking.budgets
        if not c.projection.admits
    )
    return _waiting_for_budget(asking, refusals) if refusals else None


def _waiting(
    verdict: AdmissionVerdict, condition: str, reason: str, reasons: tuple[str, ...], summary: str
) -> AdmissionVerdict:
    """`verdict`, now waiting: `condition` is False for `reason`."""
    return replace(
        verdict, outcome=Outcome.WAITING, condition=condition, reason=reason, reasons=reasons, summary=summary
    )


def _waiting_for_budget(verdict: AdmissionVerdict, refusals: tuple[str, ...]) -> AdmissionVerdict:
    """`verdict`, waiting until the refusing Budgets have room (step 3, or step 5 refused)."""
    summary = f"waiting for budget: {'; '.join(refusals)}; waiting runs start by priority, then age"
    return _waiting(verdict, C.BUDGET_RESERVED, R.BUDGET_EXCEEDED, refusals, summary)


def decide(verdict: AdmissionVerdict, answer: PolicyAnswer | None) -> AdmissionVerdict:
    """Step 4: finish a verdict that asked the policy with the engine's `answer`.

    `answer` None means no engine is configured (`jesus run` without policies): the run is admitted
    with a warning saying so. A verdict that did not ask the policy is returned unchanged.
    """
    if verdict.outcome is not Outcome.ASK_POLICY:
        return verdict
    if answer is None:
        return replace(verdict, outcome=Outcome.ADMITTED, summary="admitted", warnings=(NO_POLICY_WARNING,))
    warnings = tuple(answer.warnings)
    if answer.error is not None:
        return replace(
            verdict,
            outcome=Outcome.WAITING,
            reason=R.POLICY_UNAVAILABLE,
            reasons=tuple(answer.reasons) or (answer.error,),
            summary=f"no policy decision, not admitted (fails closed): {answer.error}",
            warnings=warnings,
            policy=answer,
        )
    if not answer.allow:
        reasons = tuple(answer.reasons) or ("denied by policy",)
        return replace(
            verdict,
            outcome=Outcome.DENIED,
            reason=R.POLICY_DENIED,
            reasons=reasons,
            summary=f"denied by policy: {'; '.join(reasons)}",
            warnings=warnings,
            policy=answer,
        )
    return replace(
        verdict,
        outcome=Outcome.ADMITTED,
        reason=R.POLICY_ALLOWED,
        reasons=tuple(answer.reasons),
        summary="admitted",
        warnings=warnings,
        policy=answer,
    )


def refused_by_ledger(verdict: AdmissionVerdict, refusal: str) -> AdmissionVerdict:
    """Step 5 refused: a Budget's figures changed between step 3 and the hold; the run waits as in 3."""
    return _waiting_for_budget(verdict, (refusal,))


def take_holds(
    budgets: Sequence[Budget], verdict: AdmissionVerdict, run: RunKey, now: datetime
) -> list[Budget]:
    """Step 5 without a cluster: the Budgets after an admitted run holds its maximum cost on every
    covering one, with the figures step 3 projected (`jesus.logic.ledger.hold_projected`).

    A verdict that is not admitted holds nothing. `jesus plan` calls this after each run, so the next
    run is decided on the running totals, as the operator's ledger would decide it: two runs that
    together overspend a Budget are not both admitted. (Step 3 admitted the run on those very
    projections, so no Budget can refuse here, unlike the cluster's ledger.)
    """
    if not verdict.admitted:
        return list(budgets)
    checks = {c.key: c for c in verdict.budgets}
    updated: list[Budget] = []
    for budget in budgets:
        check = checks.get((budget.metadata.namespace or "", budget.metadata.name or ""))
        updated.append(budget if check is None else hold_projected(budget, run, check.projection, now))
    return updated


def held_on(verdict: AdmissionVerdict) -> str:
    """The BudgetReserved message of an admitted run: what it holds, and where."""
    if not verdict.budgets:
        return "no Budget covers this run"
    names = ", ".join(f"{ns}/{name}" for ns, name in (c.key for c in verdict.budgets))
    return f"reserved {format_micros(verdict.amount_micros)} on {names}"
