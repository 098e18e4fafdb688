"""Both engines on generated inputs: random variations of the Rego tests' base case.

Where tests/e2e/test_policy_conformance.py puts the hand-written cases through both engines, this
lets hypothesis vary every field the rules read (amounts, names with odd characters, classifications,
chains, endpoints, tool identities, GPUs, budgets) and fails on the first input the engines decide
differently.
"""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jesus.devcluster.toolchain import ensure_tool
from jesus.policy import EmbeddedEngine, OpaServerEngine
from jesus.policy.opa_process import OpaServerProcess

pytestmark = pytest.mark.e2e

POLICIES = Path(__file__).resolve().parents[2] / "policies"
CASES_REF = "data.jesus.admission_test.cases"
CLASSIFICATIONS = ["public", "internal", "confidential", "restricted"]
ENDPOINTS = ["https://api.openai.com/v1", "http://llama-8b.models.svc:8000/v1", "https://llm.evil.example/v1"]
TOOL_URLS = [
    "http://fetch-mcp.tools.svc:8080/mcp",
    "http://kubernetes-mcp.tools.svc:8080/mcp",
    "https://x.example/mcp",
]
MODELS = st.sampled_from(["claude-sonnet-4-5", "gpt-5-mini", "llama-3", "mistral"])

names = st.one_of(
    st.sampled_from(["research", "ml-platform", "support", "prod-agents", "filesystem", "git", "claude-x"]),
    st.text(min_size=0, max_size=12),
    # Blank-looking names: engines differ on what whitespace is, the rules must not.
    st.text(st.sampled_from(" \t\n\r\x0b\x85\u00a0\u2003\u3000\u200b\u2028x"), max_size=4),
)
amounts = st.one_of(
    st.integers(min_value=0, max_value=200).map(lambda units: units * 1_000_000),
    st.integers(min_value=0, max_value=200_000_000),
)


def some_of(values: list[int]) -> st.SearchStrategy[list[int]]:
    return st.lists(st.sampled_from(values), unique=True) if values else st.just([])


@st.composite
def adapters(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()) and draw(st.booleans()):
        return {"name": draw(names), "found": False}
    served = draw(st.booleans())
    url = None if served else draw(st.sampled_from([None, *ENDPOINTS]) | names)
    return {
        "name": draw(names),
        "found": True,
        "ready": draw(st.sampled_from([True, False, None])),
        "provider": "vllm" if served else draw(st.sampled_from(["anthropic", "openai", "scripted"])),
        "model": draw(
            st.one_of(st.sampled_from(["claude-sonnet-4-5", "gpt-5-mini", "llama-3", "mistral"]), names)
        ),
        "endpoint": {
            "url": "http://vllm-x.research.svc:8000/v1" if served else url,
            "served": served,
            "inCluster": served or draw(st.booleans()),
        },
        "dataClassifications": draw(st.lists(st.sampled_from(CLASSIFICATIONS), unique=True)),
        "pricing": {
            "inputPerMillionMicros": draw(amounts),
            "outputPerMillionMicros": draw(amounts),
            "currency": "USD",
        },
        "gpus": {"count": draw(st.integers(1, 8)), "type": None, "replicas": 1} if served else None,
    }


@st.composite
def tools(draw: st.DrawFn, name: str) -> dict[str, Any]:
    """A tool server by identity: often one the site data allows, or one an argument, an environment
    variable or a URL away from it."""
    if draw(st.booleans()):
        return {
            "name": name,
            "transport": "http",
            "command": None,
            "args": [],
            "envNames": [],
            "url": draw(st.sampled_from(TOOL_URLS) | names),
            "allowedTools": None,
        }
    return {
        "name": name,
        "transport": "stdio",
        "command": draw(st.sampled_from(["mcp-server-filesystem", "mcp-server-git", "python3"]) | names),
        "args": draw(
            st.sampled_from([["/workspace"], ["--repository", "/workspace/repo"], []])
            | st.lists(names, max_size=3)
        ),
        "envNames": draw(
            st.lists(st.sampled_from(["PYTHONUNBUFFERED", "LD_PRELOAD"]) | names, max_size=2, unique=True)
        ),
        "url": None,
        "allowedTools": None,
    }


@st.composite
def budgets(draw: st.DrawFn, run_cost: int) -> dict[str, Any]:
    limit, spent, reserved = draw(amounts), draw(amounts), draw(amounts)
    thresholds = sorted(draw(st.lists(st.integers(1, 100), unique=True, max_size=4)))
    return {
        "name": draw(names),
        "namespace": "research",
        "scope": draw(st.sampled_from(["team=research", "namespace=research", "runSelector"])),
        "period": draw(st.sampled_from(["Daily", "Monthly", "Total"])),
        "currency": "USD",
        "limitMicros": limit,
        "spentMicros": spent,
        "reservedMicros": reserved,
        "remainingMicros": limit - spent - reserved,
        "utilizationPercent": 0,
        "thresholds": thresholds,
        "thresholdsFired": draw(some_of(thresholds)),
        "denyNewRuns": draw(st.booleans()),
        "afterRun": {
            "spentMicros": spent,
            "reservedMicros": reserved + run_cost,
            "remainingMicros": limit - spent - reserved - run_cost,
            "utilizationPercent": 0,
            "thresholdsCrossed": draw(st.lists(st.sampled_from(thresholds), unique=True))
            if thresholds
            else [],
        },
    }


@st.composite
def policy_inputs(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(base)
    run_cost = draw(amounts)
    document["owner"] = {"user": draw(names), "team": draw(names)}
    run = document["run"]
    run["namespace"] = draw(names)
    run["dataClassification"] = draw(st.sampled_from(CLASSIFICATIONS))
    run["cost"] = {"maxMicros": run_cost, "basis": draw(st.sampled_from(["maxCost", "maxTokens"]))}
    run["tools"] = [draw(tools(name)) for name in draw(st.lists(names, max_size=3, unique=True))]
    chain = draw(st.lists(adapters(), max_size=3))
    found = draw(st.booleans()) or draw(st.booleans())
    document["route"] = {
        "name": draw(names),
        "found": found,
        "appliesToRun": draw(st.booleans()) if found else None,
        "chain": [a["name"] for a in chain] if found else [],
    }
    document["adapters"] = chain if found else []
    document["budgets"] = draw(st.lists(budgets(run_cost), max_size=2))
    return document


@pytest.fixture(scope="module")
def opa() -> Path:
    return ensure_tool("opa")


@pytest.fixture(scope="module")
def base_case(opa: Path) -> dict[str, Any]:
    result = subprocess.run(
        [
            str(opa),
            "eval",
            "--data",
            str(POLICIES),
            "--format",
            "raw",
            "data.jesus.admission_test.cases.admitted",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    base: dict[str, Any] = json.loads(result.stdout)
    return base


@pytest.fixture(scope="module")
def opa_url(opa: Path) -> Iterator[str]:
    with OpaServerProcess(opa, POLICIES) as server:
        yield server.url


@pytest.fixture(scope="module")
def embedded() -> EmbeddedEngine:
    return EmbeddedEngine.from_directory(POLICIES)


async def _server_decision(url: str, document: dict[str, Any]) -> dict[str, Any]:
    async with OpaServerEngine(url, timeout_seconds=10.0) as engine:
        decision = await engine.decide(document)
    assert decision.error is None, decision.error
    return decision.as_json()


def test_engines_agree_on_generated_inputs(
    embedded: EmbeddedEngine, opa_url: str, base_case: dict[str, Any]
) -> None:
    # Derandomized: CI tries the same 150 inputs every time, so a build never fails by chance; run
    # hypothesis with more examples (or another seed) by hand when changing the rules.
    @settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(document=policy_inputs(base_case))
    def engines_agree(document: dict[str, Any]) -> None:
        local = embedded.evaluate(document)
        assert local.error is None, local.error
        assert local.as_json() == asyncio.run(_server_decision(opa_url, document)), json.dumps(document)

    engines_agree()
