"""Runs held back by a Budget: which to look at again, and when looking again would change nothing.

A run that does not fit its budgets waits. Re-deciding it costs the operator a parse, the policy input
and a ledger round trip, so with thousands waiting a periodic re-check of each would eat the operator.
Instead the operator remembers, per waiting run, what it needs (the amount, the budgets) and what it
saw (a fingerprint of its inputs): an unchanged fingerprint means the answer is unchanged, and when a
Budget frees money only the runs that now fit are woken, by priority (highest first), then oldest first.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

BudgetKey = tuple[str, str]
RunName = tuple[str, str]


@dataclass(frozen=True)
class Inputs:
    """Versions of what an admission decision reads, taken before reading it.

    A refusal remembers `fingerprint(its covering budgets)`; an equal fingerprint later means the
    same decision. A Budget created since can only refuse more, so only the covering ones count.
    """

    generation: int | None
    labels: tuple[tuple[str, str], ...]
    route: str | None
    adapters: tuple[tuple[str, str], ...]
    budgets: Mapping[tuple[str, str], str]

    def fingerprint(self, covering: Sequence[tuple[str, str]]) -> Hashable:
        budgets = tuple((key, self.budgets.get(key)) for key in covering)
        return (self.generation, self.labels, self.route, self.adapters, budgets)


@dataclass(frozen=True)
class WaitingRun:
    """A run refused for money: what it asked for, from which budgets, on which inputs."""

    namespace: str
    name: str
    created: str
    """creationTimestamp, for first-come first-served waking."""
    amount_micros: int
    budgets: tuple[BudgetKey, ...]
    fingerprint: Hashable
    priority: int = 0
    """spec.priority: a higher one is woken before an older, lower one."""


class BudgetWaits:
    """The runs waiting for money, by run and by budget."""

    def __init__(self) -> None:
        self._runs: dict[RunName, WaitingRun] = {}
        self._by_budget: dict[BudgetKey, set[RunName]] = {}

    def __len__(self) -> int:
        return len(self._runs)

    def wait(self, run: WaitingRun) -> None:
        """Remember that `run` was refused on the inputs its fingerprint names."""
        self.forget(run.namespace, run.name)
        key = (run.namespace, run.name)
        self._runs[key] = run
        for budget in run.budgets:
            self._by_budget.setdefault(budget, set()).add(key)

    def forget(self, namespace: str, name: str) -> None:
        """The run was admitted, ended or deleted, or waits for something other than money."""
        run = self._runs.pop((namespace, name), None)
        if run is None:
            return
        for budget in run.budgets:
            waiting = self._by_budget.get(budget)
            if waiting is not None:
                waiting.discard((namespace, name))
                if not waiting:
                    del self._by_budget[budget]

    def get(self, namespace: str, name: str) -> WaitingRun | None:
        """The run's last refusal for money, if it is waiting for money."""
        return self._runs.get((namespace, name))

    def fitting(self, budget: BudgetKey, remaining_micros: int) -> list[RunName]:
        """The runs waiting on `budget` that its `remaining_micros` could now admit: by priority, highest
        first, then oldest first.

        Amounts add up: with 1.00 free, runs of 0.60, 0.60 and 0.30 wake the first and the third (the
        ledger, too, admits whatever fits). A run that does not fit does not hold back a smaller one
        behind it (Kueue calls this best-effort FIFO): money never sits idle while a run could use it.
        A run that still does not fit another of its budgets is refused again when it is re-decided,
        which is correct and costs one decision.
        """
        waiting = sorted(
            (self._runs[key] for key in self._by_budget.get(budget, ())),
            key=lambda r: (-r.priority, r.created, r.namespace, r.name),
        )
        woken: list[RunName] = []
        left = remaining_micros
        for run in waiting:
            if run.amount_micros > left:
                continue
            left -= run.amount_micros
            woken.append((run.namespace, run.name))
        return woken
