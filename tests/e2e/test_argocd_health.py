"""The chart's Argo CD health checks (charts/jesus/files/argocd), run in gopher-lua, the interpreter
Argo CD embeds, by tools/argocd-health in Argo CD's own layout: every case passes, the cases cover
every phase and Ready reason the operator writes, a wrong expectation fails, careless objects get an
answer rather than an error, and the argocd-cm snippet holds exactly the scripts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from jesus.api.agentrun import AgentRunPhase
from jesus.api.modeladapter import ModelAdapterReason
from jesus.devcluster import ensure_tool

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHECKS = REPO / "charts" / "jesus" / "files" / "argocd"
KINDS = ("AgentRun", "Budget", "ModelAdapter", "RoutePolicy", "Lesson")
# The Ready reasons the operator writes on a ModelAdapter (CredentialsResolved's own are not Ready's).
READY_REASONS = {
    ModelAdapterReason.ADAPTER_READY,
    ModelAdapterReason.CREDENTIALS_MISSING,
    ModelAdapterReason.DEPLOYMENT_PROGRESSING,
    ModelAdapterReason.DEPLOYMENT_AVAILABLE,
    ModelAdapterReason.DEPLOYMENT_UNAVAILABLE,
    ModelAdapterReason.DEPLOYMENT_CONFLICT,
    ModelAdapterReason.UNSCHEDULABLE,
    ModelAdapterReason.SCALED_TO_ZERO,
}


def tool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    binary = ensure_tool("argocd-health")
    return subprocess.run([str(binary), *args], input=stdin, capture_output=True, text=True, timeout=60)


def results(root: Path) -> tuple[int, list[dict[str, Any]]]:
    run = tool("test", str(root))
    return run.returncode, [json.loads(line) for line in run.stdout.splitlines()]


def inputs(kind: str) -> list[dict[str, Any]]:
    return [
        yaml.safe_load(path.read_text())
        for path in sorted((CHECKS / "jesus.dev" / kind / "testdata").glob("*.yaml"))
    ]


def test_every_case_of_every_kind_passes() -> None:
    code, cases = results(CHECKS)
    assert code == 0, [case for case in cases if not case["pass"]]
    assert {case["check"] for case in cases} == {f"jesus.dev/{kind}" for kind in KINDS}
    statuses = {case["got"]["status"] for case in cases}
    assert statuses == {"Healthy", "Progressing", "Degraded", "Suspended"}


def test_the_cases_cover_every_phase_and_ready_reason_the_operator_writes() -> None:
    phases = {obj.get("status", {}).get("phase") for obj in inputs("AgentRun")}
    assert {phase.value for phase in AgentRunPhase} <= phases
    reasons = {
        condition["reason"]
        for obj in inputs("ModelAdapter")
        for condition in obj.get("status", {}).get("conditions", [])
        if condition["type"] == "Ready"
    }
    assert {reason.value for reason in READY_REASONS} <= reasons
    budget = {
        (condition["type"], condition["status"])
        for obj in inputs("Budget")
        for condition in obj.get("status", {}).get("conditions", [])
    }
    assert {("Exceeded", "True"), ("ThresholdReached", "True"), ("Ready", "True")} <= budget
    assert {obj["spec"]["memory"] for obj in inputs("Lesson")} == {"ShortTerm", "LongTerm"}


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    copy = tmp_path / "argocd"
    shutil.copytree(CHECKS, copy)
    tests = copy / "jesus.dev" / "AgentRun" / "health_test.yaml"
    text = tests.read_text()
    tests.write_text(text.replace("status: Healthy", "status: Degraded", 1))
    code, cases = results(copy)
    assert code == 1
    [failed] = [case for case in cases if not case["pass"]]
    assert failed["input"] == "testdata/succeeded.yaml"
    assert failed["got"]["status"] == "Healthy"


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("AgentRun", {"phase": 42}),
        ("AgentRun", {"phase": "Exploded"}),
        ("Budget", {"conditions": []}),
        ("ModelAdapter", {"conditions": [{"type": "Ready"}]}),
        ("RoutePolicy", {"observedGeneration": 1}),
        ("Lesson", {}),
    ],
)
def test_a_careless_status_gets_an_answer_not_an_error(kind: str, status: dict[str, Any]) -> None:
    obj = {"apiVersion": "jesus.dev/v1alpha1", "kind": kind, "metadata": {"name": "x", "generation": 1}}
    run = tool(
        "eval", str(CHECKS / "jesus.dev" / kind / "health.lua"), stdin=json.dumps({**obj, "status": status})
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["status"] in {"Progressing", "Unknown"}


def test_the_argocd_cm_snippet_holds_exactly_the_scripts() -> None:
    shipped = yaml.safe_load((CHECKS / "argocd-cm-patch.yaml").read_text())
    generated = yaml.safe_load(tool("snippet", str(CHECKS)).stdout)
    assert shipped == generated, (
        "regenerate: argocd-health snippet charts/jesus/files/argocd (docs/argocd.md)"
    )
    assert set(shipped["data"]) == {f"resource.customizations.health.jesus.dev_{kind}" for kind in KINDS}


@pytest.mark.parametrize(
    ("spec", "status"),
    [
        ({"memory": 42, "scope": "ml"}, "Unknown"),
        ({"scope": {"team": 7}}, "Healthy"),
        ({"memory": "ShortTerm"}, "Degraded"),
    ],
)
def test_a_careless_lesson_gets_an_answer_not_an_error(spec: dict[str, Any], status: str) -> None:
    obj = {"apiVersion": "jesus.dev/v1alpha1", "kind": "Lesson", "metadata": {"name": "x"}, "spec": spec}
    run = tool("eval", str(CHECKS / "jesus.dev" / "Lesson" / "health.lua"), stdin=json.dumps(obj))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["status"] == status
