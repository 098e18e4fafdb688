"""The input document of the admission policy: one pure function from API objects to JSON.

Both policy engines (the embedded one and the OPA server) evaluate `data.jesus.admission.decision`
over exactly this document, so it is built in one place. docs/policy-input.md documents every field
with an example; the version string changes whenever a field changes meaning or goes away.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from jesus.api.agentrun import AgentRun, ToolServer
from jesus.api.budget import Budget
from jesus.api.common import CommonConditionType, ConditionStatus
from jesus.api.modeladapter import ModelAdapter
from jesus.api.routepolicy import RoutePolicy
from jesus.logic.budget import (
    DEFAULT_NAMESPACE,
    ReservationOutcome,
    covering_budgets,
    max_run_cost,
    namespace_of,
    project_reservation,
)
from jesus.logic.endpoints import adapter_endpoint

INPUT_VERSION = "jesus.dev/policy-input/v2"
"""The version of the document; policies/admission/main.rego refuses any other."""

PolicyInput = dict[str, Any]
"""A JSON object (only dicts, lists, str, int, bool and None inside)."""


def build_policy_input(
    run: AgentRun,
    *,
    route_policy: RoutePolicy | None,
    adapters: Mapping[str, ModelAdapter],
    budgets: Iterable[Budget],
    now: datetime,
    source: str,
    default_namespace: str = DEFAULT_NAMESPACE,
) -> PolicyInput:
    """Build the admission policy's input document for `run`.

    route_policy: the RoutePolicy the run names, or None when it does not exist.
    adapters: ModelAdapters of the run's namespace by name (others may be there; only the chain's are
        used).
    budgets: Budgets that might cover the run; those that do are kept, each with its figures after
        reserving the run's maximum cost.
    now: the moment of the decision (timezone-aware; budget periods are UTC).
    source: where the figures come from: "specs" (files, as `jesus plan` reads them) or "cluster"
        (live status).
    """
    namespace = namespace_of(run.metadata.namespace, default_namespace)
    chain = [entry.adapter_ref for entry in route_policy.spec.chain] if route_policy is not None else []
    chain_adapters = [adapters[name] for name in chain if name in adapters]
    cost = max_run_cost(run.spec.limits, chain_adapters)
    covering = covering_budgets(budgets, run, default_namespace=default_namespace)
    return {
        "version": INPUT_VERSION,
        "run": _run_document(run, namespace, cost.max_micros, cost.basis.value),
        "owner": {"user": run.spec.owner.user, "team": run.spec.owner.team},
        "route": _route_document(run, route_policy, chain),
        "adapters": [_adapter_document(name, adapters.get(name)) for name in chain],
        "budgets": [
            _budget_document(budget, project_reservation(budget, cost.max_micros, now), default_namespace)
            for budget in covering
        ],
        "cluster": {"source": source, "now": _rfc3339(now)},
    }


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _run_document(run: AgentRun, namespace: str, max_micros: int, basis: str) -> dict[str, Any]:
    spec = run.spec
    return {
        "name": run.metadata.name,
        "namespace": namespace,
        "labels": dict(run.metadata.labels or {}),
        "dataClassification": spec.data_classification.value,
        "priority": spec.priority,
        "tools": [_tool_document(tool) for tool in spec.tools or []],
        "limits": {
            "maxCostMicros": spec.limits.max_cost_micros,
            "maxTokens": spec.limits.max_tokens,
            "timeoutSeconds": spec.limits.timeout_seconds,
            "maxTurns": spec.limits.max_turns,
        },
        "cost": {"maxMicros": max_micros, "basis": basis},
        "dependsOn": list(spec.depends_on or []),
    }


def _tool_document(tool: ToolServer) -> dict[str, Any]:
    """The server's identity (what runs, or where it is), not only the name the run gives it: a
    policy that allowed a name would allow whatever command or URL hides behind it."""
    stdio = tool.stdio
    return {
        "name": tool.name,
        "transport": "stdio" if stdio is not None else "http",
        "command": stdio.command if stdio is not None else None,
        "args": list(stdio.args or []) if stdio is not None else [],
        "envNames": sorted(stdio.env or {}) if stdio is not None else [],
        "url": tool.url,
        "allowedTools": sorted(tool.allowed_tools) if tool.allowed_tools is not None else None,
    }


def _route_document(run: AgentRun, route_policy: RoutePolicy | None, chain: list[str]) -> dict[str, Any]:
    name = run.spec.route_policy_ref.name
    if route_policy is None:
        return {"name": name, "found": False, "appliesToRun": None, "chain": []}
    return {
        "name": name,
        "found": True,
        "appliesToRun": route_policy.spec.serves(dict(run.metadata.labels or {})),
        "chain": chain,
    }


def _ready(adapter: ModelAdapter) -> bool | None:
    """Whether the adapter's Ready condition is True; None when no status says (spec files)."""
    if adapter.status is None or not adapter.status.conditions:
        return None
    for condition in adapter.status.conditions:
        if condition.type == CommonConditionType.READY.value:
            if condition.status == ConditionStatus.UNKNOWN:
                return None
            return condition.status == ConditionStatus.TRUE
    return None


def _adapter_document(name: str, adapter: ModelAdapter | None) -> dict[str, Any]:
    if adapter is None:
        return {"name": name, "found": False}
    spec = adapter.spec
    serving = spec.serving
    endpoint = adapter_endpoint(adapter)
    return {
        "name": name,
        "found": True,
        "ready": _ready(adapter),
        "provider": spec.provider.value,
        "model": spec.model,
        "endpoint": {"url": endpoint.url, "served": endpoint.served, "inCluster": endpoint.in_cluster},
        "dataClassifications": [c.value for c in spec.data_classifications],
        "pricing": {
            "inputPerMillionMicros": spec.pricing.input_micros_per_million,
            "outputPerMillionMicros": spec.pricing.output_micros_per_million,
            "currency": spec.pricing.currency,
        },
        "gpus": (
            {"count": serving.gpu.count, "type": serving.gpu.type, "replicas": serving.replicas}
            if serving is not None
            else None
        ),
    }


def _budget_document(budget: Budget, outcome: ReservationOutcome, default_namespace: str) -> dict[str, Any]:
    before, after = outcome.before, outcome.after
    return {
        "name": budget.metadata.name,
        "namespace": namespace_of(budget.metadata.namespace, default_namespace),
        "scope": budget.spec.scope.describe(),
        "period": budget.spec.period.value,
        "currency": budget.spec.currency,
        "limitMicros": before.limit_micros,
        "spentMicros": before.spent_micros,
        "reservedMicros": before.reserved_micros,
        "remainingMicros": before.remaining_micros,
        "utilizationPercent": before.utilization_percent,
        "thresholds": list(outcome.thresholds),
        "thresholdsFired": list(before.fired_thresholds),
        "denyNewRuns": outcome.deny_when_exceeded,
        "afterRun": {
            "spentMicros": after.spent_micros,
            "reservedMicros": after.reserved_micros,
            "remainingMicros": after.remaining_micros,
            "utilizationPercent": after.utilization_percent,
            "thresholdsCrossed": list(outcome.crossed),
        },
    }
