"""build_policy_input: one pure function from API objects to the document the policies read."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.builders.adapters import build_hosted_adapter, build_served_adapter, standard_adapters
from tests.builders.agentrun import build_run
from tests.builders.budget import spending_budget
from tests.builders.defaults import NOW
from tests.builders.policy import build_input
from tests.builders.routes import build_route

from jesus.logic.policy_input import INPUT_VERSION, build_policy_input


def _floats(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for item in value.values() for f in _floats(item)]
    if isinstance(value, list):
        return [f for item in value for f in _floats(item)]
    return []


def test_document_is_plain_json_without_floats() -> None:
    document = build_input()
    assert json.loads(json.dumps(document)) == document
    assert _floats(document) == []
    assert document["version"] == INPUT_VERSION
    assert set(document) == {"version", "run", "owner", "route", "adapters", "budgets", "cluster"}


def test_run_owner_and_route_are_described() -> None:
    document = build_input(run=build_run(labels={"app": "x"}, classification="confidential"))
    assert document["owner"] == {"user": "alice", "team": "research"}
    assert document["run"]["namespace"] == "research"
    assert document["run"]["labels"] == {"app": "x"}
    assert document["run"]["dataClassification"] == "confidential"
    assert document["run"]["tools"] == [
        {
            "name": "filesystem",
            "transport": "stdio",
            "command": "mcp-server-filesystem",
            "args": ["/workspace"],
            "envNames": [],
            "url": None,
            "allowedTools": None,
        }
    ]
    assert document["route"] == {
        "name": "default",
        "found": True,
        "appliesToRun": True,
        "chain": ["claude", "llama"],
    }
    assert [a["name"] for a in document["adapters"]] == ["claude", "llama"]
    assert document["cluster"] == {"source": "specs", "now": "2026-11-22T04:00:00Z"}


def test_http_tools_list_their_allowed_tools_sorted() -> None:
    run = build_run(
        tools=[{"name": "github", "url": "https://mcp.example/github", "allowedTools": ["b", "a"]}]
    )
    assert build_input(run=run)["run"]["tools"] == [
        {
            "name": "github",
            "transport": "http",
            "command": None,
            "args": [],
            "envNames": [],
            "url": "https://mcp.example/github",
            "allowedTools": ["a", "b"],
        }
    ]


def test_stdio_tools_carry_command_arguments_and_environment_names_not_values() -> None:
    stdio = {"command": "python3", "args": ["-m", "srv", "--x"], "env": {"TOKEN": "s3cret", "A": "1"}}
    (tool,) = build_input(run=build_run(tools=[{"name": "fs", "stdio": stdio}]))["run"]["tools"]
    assert (tool["command"], tool["args"], tool["envNames"], tool["url"]) == (
        "python3",
        ["-m", "srv", "--x"],
        ["A", "TOKEN"],
        None,
    )
    assert "s3cret" not in json.dumps(tool)


def test_missing_route_has_no_chain() -> None:
    document = build_input(route=None)
    assert document["route"] == {"name": "default", "found": False, "appliesToRun": None, "chain": []}
    assert document["adapters"] == []


def test_route_selector_that_excludes_the_run_is_reported() -> None:
    route = build_route(selector={"matchLabels": {"app": "other"}})
    assert build_input(route=route)["route"]["appliesToRun"] is False


def test_missing_adapter_is_listed_as_not_found() -> None:
    document = build_input(adapters={"claude": build_hosted_adapter()})
    assert document["adapters"][1] == {"name": "llama", "found": False}


def test_adapter_facts_the_policies_read() -> None:
    adapters = {
        "claude": build_hosted_adapter(ready=False),
        "llama": build_served_adapter(gpus=4, ready=True),
    }
    hosted, served = build_input(adapters=adapters)["adapters"]
    assert (hosted["endpoint"], hosted["ready"], hosted["gpus"]) == (
        {"url": None, "served": False, "inCluster": False},
        False,
        None,
    )
    assert hosted["pricing"] == {
        "inputPerMillionMicros": 3_000_000,
        "outputPerMillionMicros": 15_000_000,
        "currency": "USD",
    }
    assert served["endpoint"] == {
        "url": "http://vllm-llama.research.svc:8000/v1",
        "served": True,
        "inCluster": True,
    }
    assert served["ready"] is True
    assert served["gpus"] == {"count": 4, "type": "NVIDIA-H100-80GB-HBM3", "replicas": 1}


def test_adapter_without_status_has_unknown_readiness() -> None:
    assert {a["ready"] for a in build_input()["adapters"]} == {None}


def test_cost_is_bounded_by_tokens_at_the_most_expensive_adapter_when_tighter() -> None:
    run = build_run(max_cost="10.00", max_tokens=100_000)
    assert build_input(run=run)["run"]["cost"] == {"maxMicros": 1_500_000, "basis": "maxTokens"}
    assert build_input(run=build_run(max_cost="1.00", max_tokens=100_000))["run"]["cost"] == {
        "maxMicros": 1_000_000,
        "basis": "maxCost",
    }


def test_only_covering_budgets_are_included_with_figures_after_the_run() -> None:
    budgets = [
        spending_budget(spent_micros=70_000_000, reserved_micros=4_000_000),
        spending_budget(name="ml-monthly", scope={"team": "ml-platform"}),
    ]
    (budget,) = build_input(budgets=budgets)["budgets"]
    assert budget["name"] == "research-monthly"
    assert budget["scope"] == "team=research"
    assert (budget["spentMicros"], budget["reservedMicros"], budget["remainingMicros"]) == (
        70_000_000,
        4_000_000,
        26_000_000,
    )
    assert budget["afterRun"] == {
        "spentMicros": 70_000_000,
        "reservedMicros": 7_000_000,
        "remainingMicros": 23_000_000,
        "utilizationPercent": 77,
        "thresholdsCrossed": [75],
    }
    assert budget["denyNewRuns"] is True


def test_building_changes_none_of_its_arguments() -> None:
    run, route, adapters, budgets = build_run(), build_route(), standard_adapters(), [spending_budget()]
    before = copy.deepcopy((run, route, adapters, budgets))
    build_policy_input(run, route_policy=route, adapters=adapters, budgets=budgets, now=NOW, source="specs")
    assert (run, route, adapters, budgets) == before


def test_same_objects_give_the_same_document() -> None:
    assert json.dumps(build_input(), sort_keys=True) == json.dumps(build_input(), sort_keys=True)
