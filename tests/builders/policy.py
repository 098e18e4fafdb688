"""The policy input of the standard scenario: alice's run through route `default` over a hosted and a
served adapter, under one monthly Budget with some spending, judged at NOW; and what a fake engine answers."""

from __future__ import annotations

from dataclasses import dataclass

from tests.builders.adapters import standard_adapters
from tests.builders.agentrun import build_run
from tests.builders.budget import spending_budget
from tests.builders.defaults import NOW
from tests.builders.routes import build_route

from jesus.api import AgentRun, Budget, ModelAdapter, RoutePolicy
from jesus.logic.policy_input import PolicyInput, build_policy_input


@dataclass(frozen=True)
class Answer:
    """A policy engine's answer (the shape of jesus.policy.Decision), for fake engines to return."""

    allow: bool
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    engine: str = "test"
    error: str | None = None


def build_input(
    *,
    run: AgentRun | None = None,
    route: RoutePolicy | bool | None = True,
    adapters: dict[str, ModelAdapter] | None = None,
    budgets: list[Budget] | None = None,
    source: str = "specs",
) -> PolicyInput:
    """The policy input of the standard scenario, with any part replaced (route=None: route missing)."""
    return build_policy_input(
        run or build_run(),
        route_policy=build_route() if route is True else (route or None),
        adapters=standard_adapters() if adapters is None else adapters,
        budgets=[spending_budget()] if budgets is None else budgets,
        now=NOW,
        source=source,
    )
