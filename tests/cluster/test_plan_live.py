"""`jesus plan --live`: Budget figures from the cluster's Budget status, not from the spec files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.builders.adapters import build_hosted_adapter, build_served_adapter
from tests.builders.agentrun import build_run
from tests.builders.budget import spending_budget
from tests.builders.defaults import NOW, PERIOD_START
from tests.builders.routes import build_route
from tests.cluster.harness import apply

from jesus.api import ApiObject
from jesus.cli import main
from jesus.devcluster import ControlPlane
from jesus.logic.clock import format_time
from jesus.policy.planning import placed

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def write_specs(folder: Path, objects: list[ApiObject]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n---\n".join(json.dumps(obj.to_kubernetes()) for obj in objects)
    (folder / "specs.yaml").write_text(text + "\n")
    return folder


def record_spending(plane: ControlPlane, namespace: str, name: str, spent_micros: int) -> None:
    """Write Budget status as the operator's ledger would: spending in the month of the plans' NOW."""
    status = {"periodStart": PERIOD_START, "spentMicros": spent_micros, "reservedMicros": 0}
    plane.kubectl(
        *("patch", "budget", name, "-n", namespace, "--subresource=status", "--type=merge"),
        *("-p", json.dumps({"status": status})),
    )


def plan_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["plan", *args, "--policies", str(POLICIES), "--output", "json", "--now", format_time(NOW)])
    return code, json.loads(capsys.readouterr().out)


def test_live_plan_uses_the_spending_recorded_in_the_cluster(
    crds: ControlPlane, namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    budget = placed(spending_budget(spent_micros=0, reserved_micros=0), namespace)
    others = (build_hosted_adapter(), build_served_adapter(), build_route(), build_run())
    specs = write_specs(tmp_path / "specs", [*(placed(obj, namespace) for obj in others), budget])
    live_budget = budget.to_kubernetes()
    live_budget.pop("status", None)
    apply(crds, namespace, live_budget)
    # The cluster's ledger has 98.00 of 100.00 spent this month; the spec files know nothing of it.
    record_spending(crds, namespace, budget.metadata.name or "", 98_000_000)

    offline_code, offline = plan_json(capsys, str(specs))
    live_code, live = plan_json(capsys, str(specs), "--live", "--kubeconfig", str(crds.kubeconfig))

    assert offline_code == 0
    (offline_run,) = offline["runs"]
    assert (offline_run["allowed"], offline_run["source"]) == (True, "specs")
    assert live_code == 1, json.dumps(live, indent=1)
    (live_run,) = live["runs"]
    assert (live_run["allowed"], live_run["source"]) == (False, "cluster")
    assert live_run["budgets"][0]["afterRun"]["spentMicros"] == 98_000_000
    reasons = live_run["reasons"]
    assert any('budget "research-monthly"' in r and "2.00 USD left of 100.00 USD" in r for r in reasons)
