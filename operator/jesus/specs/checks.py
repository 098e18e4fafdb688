"""Rules only the whole set of specs can show: references, dependency cycles, duplicates, scopes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from jesus.api import AgentRun, Budget, ModelAdapter, RoutePolicy
from jesus.logic.budget import budget_covers
from jesus.specs.loader import LoadedObject, SpecSet
from jesus.specs.problems import Problem, Severity, sort_key

Check = Callable[[SpecSet], Iterator[Problem]]


def _where(loaded: LoadedObject) -> str:
    return f"{loaded.file}:{loaded.line}"


def check_duplicates(spec_set: SpecSet) -> Iterator[Problem]:
    """The same kind, namespace and name declared twice: one would silently replace the other."""
    first: dict[tuple[str, str, str], LoadedObject] = {}
    for loaded in spec_set.objects:
        key = (loaded.kind, loaded.namespace, loaded.name)
        if key in first:
            yield loaded.problem(
                ("metadata", "name"),
                f"{loaded.kind}/{loaded.name} is declared twice (first at {_where(first[key])})",
            )
        else:
            first[key] = loaded


def _missing(spec_set: SpecSet, kind: str, name: str, namespace: str) -> bool:
    return spec_set.get(kind, name, namespace) is None and not spec_set.declares(kind, name, namespace)


def check_references(spec_set: SpecSet) -> Iterator[Problem]:
    """routePolicyRef, chain adapterRefs and dependsOn name objects of the set (same namespace)."""
    for loaded in spec_set.objects:
        obj, ns = loaded.obj, loaded.namespace
        if isinstance(obj, AgentRun):
            ref = obj.spec.route_policy_ref.name
            if _missing(spec_set, "RoutePolicy", ref, ns):
                yield loaded.problem(
                    ("spec", "routePolicyRef", "name"), f"RoutePolicy {ref!r} is not defined"
                )
            for i, dependency in enumerate(obj.spec.depends_on or []):
                if _missing(spec_set, "AgentRun", dependency, ns):
                    yield loaded.problem(("spec", "dependsOn", i), f"AgentRun {dependency!r} is not defined")
        elif isinstance(obj, RoutePolicy):
            for i, entry in enumerate(obj.spec.chain):
                if _missing(spec_set, "ModelAdapter", entry.adapter_ref, ns):
                    yield loaded.problem(
                        ("spec", "chain", i, "adapterRef"),
                        f"ModelAdapter {entry.adapter_ref!r} is not defined",
                    )


def check_dependency_cycles(spec_set: SpecSet) -> Iterator[Problem]:
    """dependsOn must form a DAG; each cycle is reported once, at its first run in source order."""
    runs = {(o.namespace, o.name): o for o in spec_set.loaded_of_kind("AgentRun")}
    edges = {
        key: [(key[0], d) for d in (o.obj.spec.depends_on or []) if (key[0], d) in runs]
        for key, o in runs.items()
        if isinstance(o.obj, AgentRun)
    }
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(runs, white)
    reported: set[frozenset[tuple[str, str]]] = set()
    problems: list[Problem] = []

    def visit(node: tuple[str, str], stack: list[tuple[str, str]]) -> None:
        colour[node] = grey
        stack.append(node)
        for nxt in edges.get(node, []):
            if colour[nxt] == grey:
                cycle = stack[stack.index(nxt) :]
                members = frozenset(cycle)
                if members not in reported:
                    reported.add(members)
                    start = min(cycle, key=lambda k: (str(runs[k].file), runs[k].line))
                    at = cycle.index(start)
                    ordered = cycle[at:] + cycle[:at] + [start]
                    loaded = runs[start]
                    index = (loaded.obj.spec.depends_on or []).index(ordered[1][1])  # type: ignore[union-attr]
                    problems.append(
                        loaded.problem(
                            ("spec", "dependsOn", index),
                            "dependsOn forms a cycle: " + " -> ".join(name for _, name in ordered),
                        )
                    )
            elif colour[nxt] == white:
                visit(nxt, stack)
        stack.pop()
        colour[node] = black

    for key in runs:
        if colour[key] == white:
            visit(key, [])
    yield from problems


def check_budget_scopes(spec_set: SpecSet) -> Iterator[Problem]:
    """Two Budgets with the same scope and period in one namespace would double-count every run."""
    seen: dict[tuple[str, str, str], LoadedObject] = {}
    for loaded in spec_set.loaded_of_kind("Budget"):
        budget = loaded.obj
        if not isinstance(budget, Budget):
            continue
        scope = budget.spec.scope
        if scope.run_selector is not None:
            continue  # selectors may overlap on purpose (different label sets); nothing to compare
        key = (loaded.namespace, scope.describe(), budget.spec.period.value)
        if key in seen:
            yield loaded.problem(
                ("spec", "scope"),
                f"same scope ({scope.describe()}) and period ({budget.spec.period.value}) as "
                f"Budget/{seen[key].name} at {_where(seen[key])}; merge them into one",
            )
        else:
            seen[key] = loaded


@dataclass(frozen=True)
class _RunRoute:
    """An AgentRun of the set, the RoutePolicy it names, and the chain's adapters as the set has them."""

    loaded: LoadedObject
    run: AgentRun
    policy: RoutePolicy
    adapters: tuple[tuple[LoadedObject, ModelAdapter] | None, ...]
    """One entry per chain entry; None where the set lacks that ModelAdapter (or it is invalid)."""


def _run_routes(spec_set: SpecSet) -> Iterator[_RunRoute]:
    """Every valid AgentRun whose RoutePolicy the set holds (a missing one is check_references' to report)."""
    for loaded in spec_set.loaded_of_kind("AgentRun"):
        run = loaded.obj
        if not isinstance(run, AgentRun):
            continue
        policy = spec_set.get("RoutePolicy", run.spec.route_policy_ref.name, loaded.namespace)
        if policy is None or not isinstance(policy.obj, RoutePolicy):
            continue
        adapters = tuple(
            _adapter(spec_set.get("ModelAdapter", entry.adapter_ref, loaded.namespace))
            for entry in policy.obj.spec.chain
        )
        yield _RunRoute(loaded, run, policy.obj, adapters)


def _adapter(loaded: LoadedObject | None) -> tuple[LoadedObject, ModelAdapter] | None:
    if loaded is None or not isinstance(loaded.obj, ModelAdapter):
        return None
    return loaded, loaded.obj


def check_routes_serve_runs(spec_set: SpecSet) -> Iterator[Problem]:
    """A run's RoutePolicy must select it, and some adapter of the chain must accept its data."""
    for route in _run_routes(spec_set):
        run, policy = route.run, route.policy
        if not policy.spec.serves(run.metadata.labels or {}):
            yield route.loaded.problem(
                ("spec", "routePolicyRef", "name"),
                f"RoutePolicy/{policy.metadata.name} does not serve this run: "
                "its selector does not match the run's labels",
            )
        known = [found[1] for found in route.adapters if found is not None]
        if known and len(known) == len(route.adapters):
            level = run.spec.data_classification
            if not any(level in adapter.spec.data_classifications for adapter in known):
                yield route.loaded.problem(
                    ("spec", "dataClassification"),
                    f"no adapter in RoutePolicy/{policy.metadata.name}'s chain accepts {level.value} data",
                    severity=Severity.WARNING,
                )


def check_budget_currencies(spec_set: SpecSet) -> Iterator[Problem]:
    """A Budget can only count money in its own currency: every adapter its runs may use must price in it."""
    budgets = [(b, b.obj) for b in spec_set.loaded_of_kind("Budget") if isinstance(b.obj, Budget)]
    reported: set[tuple[int, int]] = set()
    for route in _run_routes(spec_set):
        covering = [(loaded, budget) for loaded, budget in budgets if budget_covers(budget, route.run)]
        for found in route.adapters:
            if found is None:
                continue
            loaded_adapter, adapter = found
            for loaded_budget, budget in covering:
                currency, priced = budget.spec.currency, adapter.spec.pricing.currency
                key = (id(loaded_budget), id(loaded_adapter))
                if currency != priced and key not in reported:
                    reported.add(key)
                    policy_name = route.policy.metadata.name or ""
                    yield loaded_budget.problem(
                        ("spec", "currency"),
                        f"counts {currency}, but ModelAdapter/{loaded_adapter.name} (used by "
                        f"AgentRun/{route.loaded.name} through RoutePolicy/{policy_name}) prices in {priced}",
                    )


CHECKS: tuple[Check, ...] = (
    check_duplicates,
    check_references,
    check_dependency_cycles,
    check_budget_scopes,
    check_budget_currencies,
    check_routes_serve_runs,
)


def validate_specs(spec_set: SpecSet) -> list[Problem]:
    """Every problem of the set, in file and line order: the loader's (schema) and the cross-object ones."""
    problems = list(spec_set.problems)
    for check in CHECKS:
        problems.extend(check(spec_set))
    return sorted(problems, key=sort_key)
