"""The generated CRDs in the real API server: installed, served, documented, with status and columns."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.builders.agentrun import agent_run
from tests.builders.budget import budget
from tests.builders.spec_files import complete_set
from tests.cluster.operator_process import CRD_DIR, REPO

from jesus.api import BudgetSpec
from jesus.devcluster import ControlPlane

EXAMPLES = REPO / "examples"
KINDS = {
    "agentruns": "AgentRun",
    "routepolicies": "RoutePolicy",
    "budgets": "Budget",
    "modeladapters": "ModelAdapter",
    "lessons": "Lesson",
}


def apply(plane: ControlPlane, namespace: str, *objects: dict) -> subprocess.CompletedProcess[str]:
    return plane.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}),
    )


def test_crds_are_established_with_names_and_categories(crds: ControlPlane) -> None:
    for path in sorted(CRD_DIR.glob("*.yaml")):
        name = path.name.removesuffix(".yaml")
        crd = json.loads(crds.kubectl("get", "crd", name, "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", name
        assert conditions.get("NamesAccepted") == "True", name
    served = crds.api_get("/apis/jesus.dev/v1alpha1")
    resources = {r["name"]: r for r in served["resources"]}
    for plural, kind in KINDS.items():
        assert resources[plural]["kind"] == kind
        assert resources[plural]["namespaced"] is True
        assert resources[plural]["categories"] == ["jesus"]
        assert resources[plural]["shortNames"]
        assert f"{plural}/status" in resources


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_applies(crds: ControlPlane, namespace: str, example: Path) -> None:
    result = crds.kubectl("apply", "-n", namespace, "-f", str(example))
    created = [line for line in result.stdout.splitlines() if line.endswith(" created")]
    documents = [d for d in example.read_text().split("\n---") if "kind:" in d]
    assert len(created) == len(documents), result.stdout
    listed = crds.kubectl("get", "jesus", "-n", namespace, "-o", "name").stdout.split()
    assert len(listed) == len(documents)


def test_kubectl_get_jesus_lists_every_kind_with_columns(crds: ControlPlane, namespace: str) -> None:
    apply(crds, namespace, *complete_set())
    table = crds.kubectl("get", "jesus", "-n", namespace).stdout
    for kind in (
        "agentrun.jesus.dev/run",
        "routepolicy.jesus.dev/route",
        "budget.jesus.dev/budget",
        "modeladapter.jesus.dev/scripted",
    ):
        assert kind in table, table
    runs = crds.kubectl("get", "ar", "-n", namespace).stdout.splitlines()
    assert runs[0].split() == ["NAME", "PHASE", "TEAM", "MAXCOST", "COSTMICROS", "AGE"]
    assert runs[1].split()[:3] == ["run", "ml", "0.50"]
    adapters = crds.kubectl("get", "ma", "-n", namespace).stdout.splitlines()
    assert adapters[0].split()[:3] == ["NAME", "PROVIDER", "MODEL"]
    assert adapters[1].split()[:3] == ["scripted", "scripted", "scripted-1"]


def test_kubectl_explain_teaches_the_api(crds: ControlPlane) -> None:
    spec = crds.kubectl("explain", "agentrun.spec").stdout
    assert "the operator never writes it" in spec
    assert "Hard limits: cost, tokens, time, turns." in spec
    assert "routePolicyRef" in spec
    max_cost = crds.kubectl("explain", "agentrun.spec.limits.maxCost").stdout
    assert "admission reserves this amount" in max_cost
    assert 'A decimal string such as "3.00"' in max_cost
    failover = " ".join(crds.kubectl("explain", "routepolicy.spec.failoverOn").stdout.split())
    assert "never InvalidRequest" in failover


def test_the_api_server_applies_the_models_defaults(crds: ControlPlane, namespace: str) -> None:
    apply(crds, namespace, budget())
    stored = json.loads(crds.kubectl("get", "budget", "budget", "-n", namespace, "-o", "json").stdout)["spec"]
    model = BudgetSpec.model_validate(budget()["spec"]).to_kubernetes()
    assert stored["thresholds"] == model["thresholds"] == [75, 90, 100]
    assert stored["onExceeded"] == model["onExceeded"] == {"denyNewRuns": True, "stopRunningRuns": False}
    assert stored["currency"] == model["currency"] == "USD"


def patch_run(
    plane: ControlPlane, namespace: str, patch: dict[str, Any], *, subresource: bool, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Merge-patch AgentRun `run`, through its status subresource or the main resource."""
    where = ["--subresource=status"] if subresource else []
    return plane.kubectl(
        "patch",
        "agentrun",
        "run",
        "-n",
        namespace,
        *where,
        "--type=merge",
        "-p",
        json.dumps(patch),
        check=check,
    )


def test_status_is_a_subresource_with_a_strict_schema(crds: ControlPlane, namespace: str) -> None:
    apply(crds, namespace, agent_run())
    condition = {
        "type": "Admitted",
        "status": "True",
        "reason": "Admitted",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    status = {"status": {"phase": "Running", "costMicros": 1234, "conditions": [condition]}}
    patch_run(crds, namespace, status, subresource=True)
    # a status written through the main resource is ignored
    patch_run(crds, namespace, {"status": {"phase": "Failed"}}, subresource=False)
    stored = json.loads(crds.kubectl("get", "agentrun", "run", "-n", namespace, "-o", "json").stdout)
    assert stored["status"]["phase"] == "Running"
    assert stored["status"]["costMicros"] == 1234
    assert stored["spec"]["limits"]["maxCost"] == "0.50"
    table = crds.kubectl("get", "agentrun", "run", "-n", namespace).stdout.splitlines()
    assert table[1].split()[1:5] == ["Running", "ml", "0.50", "1234"]

    for bad, fragment in (
        ({"phase": "Exploded"}, "Unsupported value"),
        ({"costMicros": 1.5}, "must be of type integer"),
        ({"conditions": [condition, {**condition, "status": "False"}]}, "Duplicate value"),
    ):
        result = patch_run(crds, namespace, {"status": bad}, subresource=True, check=False)
        assert result.returncode != 0, bad
        assert fragment in result.stderr, result.stderr


def test_the_specs_repository_applies_with_kustomize(crds: ControlPlane) -> None:
    from jesus.specs import load_specs

    expected = load_specs([REPO / "specs"]).objects
    namespaces = sorted({o.namespace for o in expected})
    for name in namespaces:
        crds.kubectl("create", "namespace", name, check=False)
    try:
        result = crds.kubectl("apply", "-k", str(REPO / "specs"))
        assert result.stdout.count(" created") + result.stdout.count(" unchanged") == len(expected)
        for name in namespaces:
            listed = crds.kubectl("get", "jesus", "-n", name, "-o", "name").stdout.split()
            assert len(listed) == sum(1 for o in expected if o.namespace == name)
    finally:
        for name in namespaces:
            crds.kubectl("delete", "namespace", name, "--wait=false", check=False)
