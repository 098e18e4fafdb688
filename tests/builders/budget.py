"""Budgets: as spec-file JSON, and as parsed models (fresh, or with the standard scenario's spending)."""

from __future__ import annotations

from typing import Any

from tests.builders.defaults import NAMESPACE, PERIOD_START
from tests.builders.manifest import Obj, manifest

from jesus.api import Budget


def budget(name: str = "budget", scope: Obj | None = None, limit: str = "100.00", **kw: Any) -> Obj:
    """A daily Budget over a team (or `scope`)."""
    spec: Obj = {"scope": scope if scope is not None else {"team": "ml"}, "period": "Daily", "limit": limit}
    return manifest("Budget", name, spec, **kw)


def team_budget(name: str, team: str, limit: str, *, thresholds: tuple[int, ...] = (75, 90, 100)) -> Obj:
    """A daily Budget over `team` with explicit alert thresholds."""
    result = budget(name, {"team": team}, limit)
    result["spec"]["thresholds"] = list(thresholds)
    return result


def build_budget(
    *,
    name: str = "research-monthly",
    namespace: str | None = NAMESPACE,
    scope: dict[str, Any] | None = None,
    period: str = "Monthly",
    limit: str = "100.00",
    thresholds: list[int] | None = None,
    deny: bool = True,
    stop: bool | None = None,
    status: dict[str, Any] | None = None,
) -> Budget:
    """A Budget over team research (or `scope`); without `status` nothing is spent yet."""
    on_exceeded: dict[str, Any] = {"denyNewRuns": deny}
    if stop is not None:
        on_exceeded["stopRunningRuns"] = stop
    spec: dict[str, Any] = {
        "scope": scope or {"team": "research"},
        "period": period,
        "limit": limit,
        "onExceeded": on_exceeded,
    }
    if thresholds is not None:
        spec["thresholds"] = thresholds
    return Budget.model_validate(
        {"metadata": {"name": name, "namespace": namespace}, "spec": spec, "status": status}
    )


def spending_budget(
    *,
    spent_micros: int = 10_000_000,
    reserved_micros: int = 5_000_000,
    fired: list[int] | None = None,
    **kw: Any,
) -> Budget:
    """The standard scenario's monthly Budget, with spending this period (by default a tenth spent and
    a twentieth reserved); other fields by keyword as for `build_budget`."""
    status = {
        "periodStart": PERIOD_START,
        "spentMicros": spent_micros,
        "reservedMicros": reserved_micros,
        "firedThresholds": fired or [],
    }
    return build_budget(status=status, **kw)
