"""AgentRuns: as spec-file JSON, and as parsed models (the standard scenario's run, or the small run the
reconciler's tables use)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tests.builders.defaults import NAMESPACE
from tests.builders.manifest import Obj, manifest

from jesus.api import AgentRun

# --- spec-file JSON ------------------------------------------------------------------------------


def agent_run(
    name: str = "run",
    policy: str = "route",
    depends_on: tuple[str, ...] = (),
    *,
    reflection: str = "none",
    **kw: Any,
) -> Obj:
    """An AgentRun owned by team ml, routed through `policy`.

    Without a reflection by default: the tables and figures of the tests before LAW-REFLECT-001 count
    the run's own calls; tests of the reflection pass `reflection="Checklist"`.
    """
    spec: Obj = {
        "owner": {"user": "ada@example.com", "team": "ml"},
        "task": {"instructions": "Summarise the input.", "inputs": {"text": "hello"}},
        "routePolicyRef": {"name": policy},
        "limits": {"maxCost": "0.50"},
        "reflection": reflection,
    }
    if depends_on:
        spec["dependsOn"] = list(depends_on)
    return manifest("AgentRun", name, spec, **kw)


def hello_run(
    name: str,
    *,
    team: str,
    route_name: str,
    max_cost: str = "0.10",
    depends_on: tuple[str, ...] = (),
    retries: int = 0,
    timeout_seconds: int = 60,
    reflection: str = "none",
) -> Obj:
    """A short AgentRun of `team` (two turns, no backoff), as the cluster tier and the bench start many."""
    result = agent_run(name, route_name, depends_on, reflection=reflection)
    result["spec"].update(
        owner={"user": "ada@example.com", "team": team},
        task={"instructions": f"Say hello for {name}."},
        limits={"maxCost": max_cost, "maxTurns": 2, "timeoutSeconds": timeout_seconds},
        retryPolicy={"maxRetries": retries, "backoffSeconds": 0},
    )
    return result


# --- parsed models -------------------------------------------------------------------------------

SUMMARISER_LABELS: Mapping[str, str] = {"app": "summariser"}
FILESYSTEM_TOOL: Mapping[str, Any] = {
    "name": "filesystem",
    "stdio": {"command": "mcp-server-filesystem", "args": ["/workspace"]},
}
"""The run's default tool server, one the site data (policies/data.json) allows by what it runs."""
FILESYSTEM_TOOLS: Sequence[Mapping[str, Any]] = (FILESYSTEM_TOOL,)


def build_run(
    *,
    name: str = "summarise-tickets",
    namespace: str | None = NAMESPACE,
    uid: str | None = None,
    team: str = "research",
    user: str = "alice",
    labels: Mapping[str, str] | None = SUMMARISER_LABELS,
    classification: str | None = "internal",
    route: str = "default",
    instructions: str = "Summarise yesterday's support tickets.",
    max_cost: str = "3.00",
    max_tokens: int | None = None,
    timeout_seconds: int = 1800,
    tools: Sequence[Mapping[str, Any]] | None = FILESYSTEM_TOOLS,
    depends_on: list[str] | None = None,
    retries: int | None = None,
    backoff: int = 10,
) -> AgentRun:
    """The standard scenario's AgentRun: alice of team research summarises tickets through route
    `default`, with a filesystem tool. None leaves a field out (labels, tools, classification, retry
    policy)."""
    limits: dict[str, Any] = {"maxCost": max_cost, "timeoutSeconds": timeout_seconds}
    if max_tokens is not None:
        limits["maxTokens"] = max_tokens
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if uid is not None:
        metadata["uid"] = uid
    spec: dict[str, Any] = {
        "owner": {"user": user, "team": team},
        "task": {"instructions": instructions},
        "routePolicyRef": {"name": route},
        "limits": limits,
        "tools": tools,
        "dependsOn": depends_on,
    }
    if classification is not None:
        spec["dataClassification"] = classification
    if retries is not None:
        spec["retryPolicy"] = {"maxRetries": retries, "backoffSeconds": backoff}
    return AgentRun.model_validate({"metadata": metadata, "spec": spec})


def reconciled_run(*, retries: int = 0, backoff: int = 10, depends_on: list[str] | None = None) -> AgentRun:
    """The small run the reconciler's tables use: `r` in namespace `ns` with a UID, one dollar, two
    minutes, no tools, the retry policy given."""
    return build_run(
        name="r",
        namespace="ns",
        uid="u-1",
        user="ada@example.com",
        labels=None,
        classification=None,
        route="route",
        instructions="Do it.",
        max_cost="1.00",
        timeout_seconds=120,
        tools=None,
        depends_on=depends_on,
        retries=retries,
        backoff=backoff,
    )
