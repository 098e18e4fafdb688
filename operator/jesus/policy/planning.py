"""Admission for every AgentRun of a specs tree, as the operator would decide it after a merge.

`jesus plan` and the conformance tests use this: references resolve within the run's namespace (the
loader's namespace: metadata, else the nearest kustomization, else "default"), Budgets come from the
specs or, with live figures, from the cluster. Each run goes through `jesus.logic.admission`, the
operator's own decision; dependencies are not known before merge, so that step is left out.
Runs are decided in source order on the running totals of their Budgets (`plan_in_order`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from jesus.api import AgentRun, Budget, ModelAdapter, RoutePolicy
from jesus.logic.admission import AdmissionInputs, AdmissionVerdict, Outcome, admit, decide, take_holds
from jesus.logic.budget import DEFAULT_NAMESPACE
from jesus.logic.ledger import RunKey
from jesus.logic.policy_input import PolicyInput
from jesus.policy.decision import PolicyEngine
from jesus.specs import LoadedObject, SpecSet

T = TypeVar("T", AgentRun, RoutePolicy, Budget, ModelAdapter)


@dataclass(frozen=True)
class PlannedRun:
    """One AgentRun of the specs, where it was read from, and admission's verdict on it."""

    run: AgentRun
    loaded: LoadedObject
    verdict: AdmissionVerdict
    """Before the policy was asked (Outcome.ASK_POLICY) unless a step before it decided."""

    @property
    def policy_input(self) -> PolicyInput:
        """The run's policy input document."""
        assert self.verdict.policy_input is not None
        return self.verdict.policy_input

    @property
    def namespace(self) -> str:
        """The namespace the run would be created in."""
        return self.run.metadata.namespace or DEFAULT_NAMESPACE

    @property
    def name(self) -> str:
        """The run's name."""
        return self.run.metadata.name or ""


def placed(obj: T, namespace: str) -> T:
    """`obj` with metadata.namespace set to where it will live ("" means the default namespace)."""
    metadata = obj.metadata.model_copy(update={"namespace": namespace or DEFAULT_NAMESPACE})
    return obj.model_copy(update={"metadata": metadata})


def _placed_of_kind(spec_set: SpecSet, model: type[T]) -> list[T]:
    return [placed(o.obj, o.namespace) for o in spec_set.objects if isinstance(o.obj, model)]


def merge_live_budgets(spec_budgets: Sequence[Budget], live_budgets: Sequence[Budget]) -> list[Budget]:
    """The Budgets after a merge: each Budget of the specs with its live status (spending so far) when
    the cluster has it, plus the cluster's Budgets the specs do not mention."""

    def key(budget: Budget) -> tuple[str, str]:
        return (budget.metadata.namespace or DEFAULT_NAMESPACE, budget.metadata.name or "")

    live = {key(b): b for b in live_budgets}
    merged = [
        b.model_copy(update={"status": live[key(b)].status}) if key(b) in live else b for b in spec_budgets
    ]
    spec_keys = {key(b) for b in spec_budgets}
    merged.extend(b for k, b in live.items() if k not in spec_keys)
    return merged


@dataclass(frozen=True)
class _Specs:
    """What admission reads of a specs tree, resolved once: routes and adapters by namespace, Budgets."""

    routes: dict[tuple[str | None, str | None], RoutePolicy]
    adapters: dict[str | None, dict[str, ModelAdapter]]
    budgets: list[Budget]
    source: str


def _read_specs(spec_set: SpecSet, live_budgets: Iterable[Budget] | None) -> _Specs:
    routes = {(r.metadata.namespace, r.metadata.name): r for r in _placed_of_kind(spec_set, RoutePolicy)}
    adapters: dict[str | None, dict[str, ModelAdapter]] = {}
    for adapter in _placed_of_kind(spec_set, ModelAdapter):
        adapters.setdefault(adapter.metadata.namespace, {})[adapter.metadata.name or ""] = adapter
    budgets = _placed_of_kind(spec_set, Budget)
    if live_budgets is None:
        return _Specs(routes, adapters, budgets, "specs")
    return _Specs(routes, adapters, merge_live_budgets(budgets, list(live_budgets)), "cluster")


def _runs(spec_set: SpecSet) -> list[tuple[LoadedObject, AgentRun]]:
    return [
        (loaded, placed(loaded.obj, loaded.namespace))
        for loaded in spec_set.loaded_of_kind("AgentRun")
        if isinstance(loaded.obj, AgentRun)
    ]


def _admit(specs: _Specs, run: AgentRun, budgets: Sequence[Budget], now: datetime) -> AdmissionVerdict:
    namespace = run.metadata.namespace
    inputs = AdmissionInputs(
        run=run,
        route=specs.routes.get((namespace, run.spec.route_policy_ref.name)),
        adapters=specs.adapters.get(namespace, {}),
        budgets=budgets,
        dependency_phases=None,
        now=now,
        source=specs.source,
    )
    return admit(inputs)


def plan_runs(
    spec_set: SpecSet, *, now: datetime, live_budgets: Iterable[Budget] | None = None
) -> list[PlannedRun]:
    """Admission's verdict on every valid AgentRun in `spec_set` up to the policy, in source order,
    each decided alone against the Budgets' figures (no other run's hold); `plan_in_order` is what
    `jesus plan` reports.

    With `live_budgets` (read from a cluster) the Budgets carry the cluster's current figures and the
    document says source "cluster"; otherwise the figures are those the spec files state.
    """
    specs = _read_specs(spec_set, live_budgets)
    return [
        PlannedRun(run=run, loaded=loaded, verdict=_admit(specs, run, specs.budgets, now))
        for loaded, run in _runs(spec_set)
    ]


async def plan_in_order(
    engine: PolicyEngine, spec_set: SpecSet, *, now: datetime, live_budgets: Iterable[Budget] | None = None
) -> list[tuple[PlannedRun, AdmissionVerdict]]:
    """Every AgentRun of `spec_set` through admission in source order, each decided on the running
    totals of its Budgets: a run that is admitted holds its maximum cost (`take_holds`, the ledger's
    arithmetic) before the next is decided, so two runs that together overspend a Budget are not both
    admitted. Returns each run with its verdict before the policy and its final verdict.
    """
    specs = _read_specs(spec_set, live_budgets)
    budgets: list[Budget] = specs.budgets
    results: list[tuple[PlannedRun, AdmissionVerdict]] = []
    for loaded, run in _runs(spec_set):
        planned = PlannedRun(run=run, loaded=loaded, verdict=_admit(specs, run, budgets, now))
        verdict = await decide_planned(engine, planned)
        key = RunKey(run.metadata.namespace or "", run.metadata.name or "", "")
        budgets = take_holds(budgets, verdict, key, now)
        results.append((planned, verdict))
    return results


async def decide_planned(engine: PolicyEngine, planned: PlannedRun) -> AdmissionVerdict:
    """The final verdict on a planned run: the policy is asked only when admission says to."""
    verdict = planned.verdict
    if verdict.outcome is not Outcome.ASK_POLICY:
        return verdict
    return decide(verdict, await engine.decide(planned.policy_input))
