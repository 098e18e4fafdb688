"""Test-object builders for policy tests: API objects with sensible defaults, changed by keyword."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jesus.api import AgentRun, Budget, ModelAdapter, RoutePolicy
from jesus.logic.clock import format_time
from jesus.logic.policy_input import PolicyInput, build_policy_input

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
"""The moment every policy test is judged at: pass it (or a moment relative to it), never the wall clock."""
PERIOD_START = format_time(NOW.replace(day=1, hour=0, minute=0))
"""The start of NOW's month: the period of the Budgets built here."""
NAMESPACE = "research"
FILESYSTEM_TOOL = {
    "name": "filesystem",
    "stdio": {"command": "mcp-server-filesystem", "args": ["/workspace"]},
}
"""The run's default tool server, one the site data (policies/data.json) allows by what it runs."""


def build_run(
    *,
    name: str = "summarise-tickets",
    namespace: str | None = NAMESPACE,
    team: str = "research",
    user: str = "alice",
    labels: dict[str, str] | None = None,
    classification: str = "internal",
    route: str = "default",
    max_cost: str = "3.00",
    max_tokens: int | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> AgentRun:
    """An AgentRun owned by alice of team research, routed by `default`."""
    limits: dict[str, Any] = {"maxCost": max_cost, "timeoutSeconds": 1800}
    if max_tokens is not None:
        limits["maxTokens"] = max_tokens
    return AgentRun.model_validate(
        {
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": "summariser"}},
            "spec": {
                "owner": {"user": user, "team": team},
                "task": {"instructions": "Summarise yesterday's support tickets."},
                "routePolicyRef": {"name": route},
                "dataClassification": classification,
                "limits": limits,
                "tools": tools if tools is not None else [FILESYSTEM_TOOL],
            },
        }
    )


def build_route(
    *,
    name: str = "default",
    chain: tuple[str, ...] = ("claude", "llama"),
    selector: dict[str, Any] | None = None,
) -> RoutePolicy:
    """A RoutePolicy over `chain`."""
    spec: dict[str, Any] = {"chain": [{"adapterRef": adapter} for adapter in chain]}
    if selector is not None:
        spec["selector"] = selector
    return RoutePolicy.model_validate({"metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec})


def build_hosted_adapter(
    *,
    name: str = "claude",
    model: str = "claude-sonnet-4-5",
    classifications: tuple[str, ...] = ("public", "internal"),
    input_price: str = "3.00",
    output_price: str = "15.00",
    ready: bool | None = None,
) -> ModelAdapter:
    """An Anthropic adapter; `ready` sets a Ready condition (None leaves status out, as in spec files)."""
    return _with_ready(
        {
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "provider": "anthropic",
                "model": model,
                "credentialsSecretRef": {"name": "anthropic", "key": "api-key"},
                "pricing": {"inputPerMillionTokens": input_price, "outputPerMillionTokens": output_price},
                "dataClassifications": list(classifications),
            },
        },
        ready,
    )


def build_served_adapter(
    *,
    name: str = "llama",
    model: str = "llama-3.3-70b",
    gpus: int = 1,
    classifications: tuple[str, ...] = ("public", "internal", "confidential", "restricted"),
    ready: bool | None = None,
) -> ModelAdapter:
    """A vLLM adapter the platform serves itself on `gpus` GPUs per replica."""
    return _with_ready(
        {
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "provider": "vllm",
                "model": model,
                "dataClassifications": list(classifications),
                "serving": {
                    "image": "vllm/vllm-openai:v0.11.0",
                    "modelURI": "hf://meta-llama/Llama-3.3-70B-Instruct",
                    "gpu": {"count": gpus, "type": "NVIDIA-H100-80GB-HBM3"},
                },
            },
        },
        ready,
    )


def _with_ready(body: dict[str, Any], ready: bool | None) -> ModelAdapter:
    if ready is not None:
        body["status"] = {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": "2026-11-22T03:00:00Z",
                    "reason": "AdapterReady" if ready else "DeploymentUnavailable",
                }
            ]
        }
    return ModelAdapter.model_validate(body)


def build_budget(
    *,
    name: str = "research-monthly",
    scope: dict[str, Any] | None = None,
    limit: str = "100.00",
    spent_micros: int = 10_000_000,
    reserved_micros: int = 5_000_000,
    fired: list[int] | None = None,
    deny: bool = True,
) -> Budget:
    """A monthly Budget of team research with some spending this period."""
    return Budget.model_validate(
        {
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "scope": scope or {"team": "research"},
                "period": "Monthly",
                "limit": limit,
                "onExceeded": {"denyNewRuns": deny},
            },
            "status": {
                "periodStart": PERIOD_START,
                "spentMicros": spent_micros,
                "reservedMicros": reserved_micros,
                "firedThresholds": fired or [],
            },
        }
    )


def standard_adapters() -> dict[str, ModelAdapter]:
    """The two adapters of the default route, by name."""
    return {"claude": build_hosted_adapter(), "llama": build_served_adapter()}


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
        budgets=[build_budget()] if budgets is None else budgets,
        now=NOW,
        source=source,
    )
