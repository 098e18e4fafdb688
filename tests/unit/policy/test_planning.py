"""plan_runs: each AgentRun's references resolve in its own namespace, as admission resolves them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from tests.builders.adapters import build_hosted_adapter, build_served_adapter
from tests.builders.agentrun import build_run
from tests.builders.budget import spending_budget
from tests.builders.routes import build_route

from jesus.api import ApiObject
from jesus.policy.planning import placed, plan_runs
from jesus.specs import load_specs

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


def write(path: Path, objects: Sequence[ApiObject], *, strip_namespace: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    documents = []
    for obj in objects:
        body = obj.to_kubernetes()
        if strip_namespace:
            body["metadata"].pop("namespace", None)
        documents.append(json.dumps(body))
    path.write_text("\n---\n".join(documents) + "\n")


def test_references_resolve_in_the_runs_namespace(tmp_path: Path) -> None:
    elsewhere = [placed(build_route(chain=("claude",)), "other"), placed(build_hosted_adapter(), "other")]
    here = [build_hosted_adapter(), build_served_adapter(), build_route(), spending_budget(), build_run()]
    write(tmp_path / "other.yaml", elsewhere)
    write(tmp_path / "research.yaml", here)
    (planned,) = plan_runs(load_specs([tmp_path]), now=NOW)
    assert planned.namespace == "research"
    assert planned.policy_input["route"]["chain"] == ["claude", "llama"]
    assert [b["name"] for b in planned.policy_input["budgets"]] == ["research-monthly"]
    assert planned.policy_input["cluster"]["source"] == "specs"


def test_a_route_only_in_another_namespace_is_not_found(tmp_path: Path) -> None:
    write(tmp_path / "other.yaml", [placed(build_route(), "other"), placed(build_hosted_adapter(), "other")])
    write(tmp_path / "run.yaml", [build_run()])
    (planned,) = plan_runs(load_specs([tmp_path]), now=NOW)
    assert planned.policy_input["route"]["found"] is False


def test_objects_without_namespace_live_in_default(tmp_path: Path) -> None:
    objects = [build_hosted_adapter(), build_served_adapter(), build_route(), build_run(namespace=None)]
    write(tmp_path / "specs.yaml", objects, strip_namespace=True)
    (planned,) = plan_runs(load_specs([tmp_path]), now=NOW)
    assert planned.namespace == "default"
    assert planned.policy_input["run"]["namespace"] == "default"
    assert planned.policy_input["route"]["found"] is True


def test_kustomization_namespace_places_the_objects(tmp_path: Path) -> None:
    folder = tmp_path / "team"
    objects = [build_hosted_adapter(), build_served_adapter(), build_route(), build_run(namespace=None)]
    write(folder / "specs.yaml", objects, strip_namespace=True)
    (folder / "kustomization.yaml").write_text("namespace: team-ns\nresources: [specs.yaml]\n")
    (planned,) = plan_runs(load_specs([tmp_path]), now=NOW)
    assert planned.namespace == "team-ns"
    assert planned.policy_input["route"]["found"] is True


def test_a_namespace_budget_elsewhere_covers_the_run(tmp_path: Path) -> None:
    research_cap = spending_budget(name="research-cap", scope={"namespace": "research"})
    platform_budget = placed(research_cap, "platform")
    write(tmp_path / "platform.yaml", [platform_budget])
    write(
        tmp_path / "research.yaml",
        [build_hosted_adapter(), build_served_adapter(), build_route(), build_run()],
    )
    (planned,) = plan_runs(load_specs([tmp_path]), now=NOW)
    assert [(b["namespace"], b["name"]) for b in planned.policy_input["budgets"]] == [
        ("platform", "research-cap")
    ]
