"""Admission for every AgentRun of a specs tree, as the operator would decide it after a merge.

`jesus plan` and the conformance tests use this: references resolve within the run's namespace (the
loader's namespace: metadata, else the nearest kustomization, else "default"), Budgets come from the
specs or, with live figures, from the cluster. Each run goes through `jesus.logic.admission`, the
operator's own decision; dependencies are not known before merge, so that step is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from jesus.api import AgentRun, Budget, ModelAdapter, RoutePolicy
from jesus.logic.admission import AdmissionInputs, AdmissionVerdict, Outcome, admit, decide
from jesus.logic.budget import DEFAULT_NAMESPACE
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


def plan_runs(
    spec_set: SpecSet, *, now: datetime, live_budgets: Iterable[Budget] | None = None
) -> list[PlannedRun]:
    """Admission's verdict on every valid AgentRun in `spec_set` up to the policy, in source order.

    With `live_budgets` (read from a cluster) the Budgets carry the cluster's current figures and the
    document says source "cluster"; otherwise the figures are those the spec files state.
    """
    routes = {(r.metadata.namespace, r.metadata.name): r for r in _placed_of_kind(spec_set, RoutePolicy)}
    adapters: dict[str | None, dict[str, ModelAdapter]] = {}
    for adapter in _placed_of_kind(spec_set, ModelAdapter):
        adapters.setdefault(adapter.metadata.namespace, {})[adapter.metadata.name or ""] = adapter
    budgets = _placed_of_kind(spec_set, Budget)
    source = "specs"
    if live_budgets is not None:
        budgets = merge_live_budgets(budgets, list(live_budgets))
        source = "cluster"
    planned: list[PlannedRun] = []
    for loaded in spec_set.loaded_of_kind("AgentRun"):
        if not isinstance(loaded.obj, AgentRun):
            continue
        run = placed(loaded.obj, loaded.namespace)
        namespace = run.metadata.namespace
        inputs = AdmissionInputs(
            run=run,
            route=routes.get((namespace, run.spec.route_policy_ref.name)),
            adapters=adapters.get(namespace, {}),
            budgets=budgets,
            dependency_phases=None,
            now=now,
            source=source,
        )
        planned.append(PlannedRun(run=run, loaded=loaded, verdict=admit(inputs)))
    return planned


async def decide_planned(engine: PolicyEngine, planned: PlannedRun) -> AdmissionVerdict:
    """The final verdict on a planned run: the policy is asked only when admission says to."""
    verdict = planned.verdict
    if verdict.outcome is not Outcome.ASK_POLICY:
        return verdict
    return decide(verdict, await engine.decide(planned.policy_input))
