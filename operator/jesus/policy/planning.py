"""Policy inputs for every AgentRun of a specs tree, as admission would see them after a merge.

`jesus plan` and the conformance test use this: references resolve within the run's namespace (the
loader's namespace: metadata, else the nearest kustomization, else "default"), Budgets come from the
specs or, with live figures, from the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from jesus.api import AgentRun, Budget, ModelAdapter, RoutePolicy
from jesus.logic.budget import DEFAULT_NAMESPACE
from jesus.logic.policy_input import PolicyInput, build_policy_input
from jesus.specs import LoadedObject, SpecSet

T = TypeVar("T", AgentRun, RoutePolicy, Budget, ModelAdapter)


@dataclass(frozen=True)
class PlannedRun:
    """One AgentRun of the specs, where it was read from, and its policy input document."""

    run: AgentRun
    loaded: LoadedObject
    policy_input: PolicyInput

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
    """The policy input of every valid AgentRun in `spec_set`, in source order.

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
        document = build_policy_input(
            run,
            route_policy=routes.get((namespace, run.spec.route_policy_ref.name)),
            adapters=adapters.get(namespace, {}),
            budgets=budgets,
            now=now,
            source=source,
        )
        planned.append(PlannedRun(run=run, loaded=loaded, policy_input=document))
    return planned
