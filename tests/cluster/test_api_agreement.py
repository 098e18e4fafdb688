"""Property: for any spec, `jesus validate` accepts it exactly when the API server does.

Hypothesis starts from valid objects of every kind and mutates them (replace a value with one of many
valid and invalid values, drop a field, add an unknown one, repeat a list item); each result is sent to
the API server as a dry-run create with strict field validation and loaded by the offline validator.
"""

from __future__ import annotations

import copy
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.builders.adapters import openai_adapter, scripted_adapter, vllm_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import budget
from tests.builders.manifest import set_field
from tests.builders.routes import route_policy
from tests.cluster.operator_process import install_crds

from jesus.api.kinds import KINDS
from jesus.devcluster import ControlPlane
from jesus.specs import Severity, load_text


def rich_bases() -> list[dict[str, Any]]:
    """Valid objects that between them set most optional fields, so mutations reach every rule."""
    run = agent_run(name="rich", depends_on=("other",), labels={"tier": "batch", "jesus.dev/team": "ml"})
    run = set_field(
        run,
        "spec.tools",
        [
            {"name": "git", "stdio": {"command": "mcp-git", "args": ["--ro"]}, "allowedTools": ["log"]},
            {"name": "web", "url": "http://web/mcp"},
        ],
    )
    run = set_field(
        run, "spec.limits", {"maxCost": "1.00", "maxTokens": 1000, "timeoutSeconds": 60, "maxTurns": 5}
    )
    run = set_field(run, "spec.retryPolicy", {"maxRetries": 1, "backoffSeconds": 10})
    run = set_field(run, "spec.resources", {"requests": {"cpu": "100m", "memory": "64Mi"}})
    policy = route_policy(adapters=("a", "b"))
    policy = set_field(policy, "spec.failoverOn", ["RateLimited", "Timeout"])
    policy = set_field(
        policy,
        "spec.retries",
        {"maxAttempts": 2, "initialBackoffMilliseconds": 10, "maxBackoffMilliseconds": 100},
    )
    policy = set_field(policy, "spec.failoverDeadlineSeconds", 60)
    policy = set_field(
        policy,
        "spec.selector",
        {"matchLabels": {"tier": "a"}, "matchExpressions": [{"key": "x", "operator": "In", "values": ["1"]}]},
    )
    selector_budget = budget(
        scope={"runSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]}}
    )
    selector_budget = set_field(selector_budget, "spec.thresholds", [50, 100])
    scripted = set_field(
        scripted_adapter(),
        "spec.scripted.replies",
        [
            {"text": "a"},
            {"toolCalls": [{"name": "t", "arguments": {"k": [1, 2]}}]},
            {"error": {"class": "Timeout"}},
        ],
    )
    return [run, policy, budget(), selector_budget, scripted, openai_adapter(), vllm_adapter()]


BASES = rich_bases()

STRINGS = [
    "",
    "a",
    "ml",
    "A B",
    "x" * 64,
    "0.5",
    "3.00",
    "-1",
    "1.0000001",
    "http://x",
    "ftp://x",
    "Daily",
    "Weekly",
    "RateLimited",
    "InvalidRequest",
    "public",
    "secret",
    "vllm",
    "scripted",
    "openai",
    "In",
    "Exists",
    "team",
    "hf://m",
    "1Gi",
    "2026-01-01T00:00:00Z",
    "yes",
]
SCALARS = st.one_of(
    st.sampled_from(STRINGS),
    st.sampled_from([-1, 0, 1, 2, 16, 17, 75, 100, 101, 1000, 1001, 3600, 86_400, 86_401, 10**9 + 1]),
    st.booleans(),
    st.sampled_from([1.5, 2.0, 1e3]),
)
VALUES = st.one_of(
    SCALARS,
    st.just(None),
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.sampled_from(["a", "name", "text", "key"]), SCALARS, max_size=2),
)


def paths(node: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every path inside `node` (the node itself excluded)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from paths(value, (*prefix, index))


def at(node: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        node = node[part]  # type: ignore[index]
    return node


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    body = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        spec_paths = [("spec", *p) for p in paths(body["spec"])]
        spec_paths += [("metadata", *p) for p in paths(body["metadata"]) if p[0] == "labels"]
        path = draw(st.sampled_from(spec_paths))
        parent, last = at(body, path[:-1]), path[-1]
        operation = draw(st.sampled_from(["replace", "replace", "replace", "drop", "unknown", "repeat"]))
        if operation == "replace":
            parent[last] = draw(VALUES)
        elif operation == "drop":
            del parent[last]
        elif operation == "unknown" and isinstance(parent, dict):
            parent["surprise"] = draw(SCALARS)
        elif operation == "repeat" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
    return body


@pytest.fixture(scope="module")
def api(control_plane: ControlPlane) -> Iterator[tuple[httpx.Client, str]]:
    install_crds(control_plane)
    namespace = "api-agreement"
    control_plane.kubectl("create", "namespace", namespace, check=False)
    context = ssl.create_default_context(cafile=str(control_plane.pki_dir / "ca.crt"))
    context.load_cert_chain(
        str(control_plane.pki_dir / "admin.crt"), str(control_plane.pki_dir / "admin.key")
    )
    with httpx.Client(base_url=control_plane.server, verify=context, timeout=30) as client:
        yield client, namespace
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def server_accepts(client: httpx.Client, namespace: str, body: dict[str, Any]) -> tuple[bool, str]:
    response = client.post(
        f"/apis/jesus.dev/v1alpha1/namespaces/{namespace}/{KINDS[body['kind']].plural}",
        params={"dryRun": "All", "fieldValidation": "Strict"},
        json=body,
    )
    assert response.status_code in (201, 400, 422), response.text
    return response.status_code == 201, response.json().get("message", "")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=mutated_specs())
def test_validate_and_the_api_server_accept_the_same_specs(
    api: tuple[httpx.Client, str], body: dict[str, Any]
) -> None:
    client, namespace = api
    accepted, server_message = server_accepts(client, namespace, body)
    event(f"{body['kind']} {'accepted' if accepted else 'rejected'}")
    # JSON is YAML: the validator reads exactly the object the server received.
    spec_set = load_text(json.dumps(body), Path("generated.json"))
    problems = [p.format() for p in spec_set.problems if p.severity is Severity.ERROR]
    assert accepted == (not problems), (
        f"API server {'accepted' if accepted else 'rejected'} ({server_message}); "
        f"validate found {problems or 'nothing'}; object: {json.dumps(body)}"
    )


@pytest.mark.parametrize("base", BASES, ids=[f"{b['kind']}-{i}" for i, b in enumerate(BASES)])
def test_the_unmutated_bases_pass_both(api: tuple[httpx.Client, str], base: dict[str, Any]) -> None:
    client, namespace = api
    assert server_accepts(client, namespace, base)[0]
    assert load_text(json.dumps(base)).problems == []


@pytest.mark.parametrize(
    ("thresholds", "accepted"),
    [([2.0, 100], False), ([50, 100.0], False), ([2.0, 3.0], False), ([2.0], False), ([50, 100], True)],
)
def test_whole_numbers_written_as_decimals_agree_with_the_api_server(
    api: tuple[httpx.Client, str], thresholds: list[float], accepted: bool
) -> None:
    """The server reads a scalar 2.0 as 2, but its CEL rules refuse a list holding 2.0 (found by the
    property test above): the validator keeps decimals in lists, so it refuses them too."""
    client, namespace = api
    base = next(b for b in BASES if b["kind"] == "Budget")
    body = set_field(copy.deepcopy(base), "spec.thresholds", thresholds)
    assert server_accepts(client, namespace, body)[0] is accepted
    problems = [p for p in load_text(json.dumps(body)).problems if p.severity is Severity.ERROR]
    assert (not problems) is accepted, problems
