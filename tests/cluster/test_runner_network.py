"""The operator gives each run a NetworkPolicy on the real API server: made before the runner Job,
owned by the run (garbage-collected with it), allowing the deployment's rules and the run's in-cluster
tool server, and a Warning Event for the one outside the cluster."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from tests.builders.adapters import answering_adapter
from tests.builders.agentrun import hello_run
from tests.builders.budget import team_budget
from tests.builders.routes import failover_route
from tests.cluster.harness import REPO, OperatorWorld, get, operator_world, wait_for

from jesus.devcluster import ControlPlane

TOOL_IN_CLUSTER = "http://git-mcp:8080/mcp"
TOOL_OUTSIDE = "https://mcp.example.com/mcp"
ROUTER_RULE = {
    "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "router"}}}],
    "ports": [{"protocol": "TCP", "port": 8080}],
}
GIT_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "git-mcp"},
    "spec": {"selector": {"app": "git-mcp"}, "ports": [{"port": 8080, "targetPort": 3000}]},
}


@pytest.fixture(scope="module")
def world(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorWorld]:
    workdir = tmp_path_factory.mktemp("network")
    # The site's policy data, with the team cleared for both tool servers.
    policies = workdir / "policies"
    shutil.copytree(REPO / "policies", policies)
    data = json.loads((policies / "data.json").read_text())
    data["jesus"]["config"]["allowedToolServers"] += [{"url": TOOL_IN_CLUSTER}, {"url": TOOL_OUTSIDE}]
    (policies / "data.json").write_text(json.dumps(data))
    objects = [answering_adapter("steady", replies=20), failover_route("simple", "steady")]
    objects += [team_budget("team-net", "team-net", "10.00"), GIT_SERVICE]
    with operator_world(
        control_plane,
        workdir,
        "network",
        objects,
        policies=policies,
        operator_args=(f"--runner-egress={json.dumps([ROUTER_RULE])}",),
    ) as world:
        yield world


def test_a_run_gets_a_network_policy_before_its_job_that_goes_with_the_run(world: OperatorWorld) -> None:
    run = hello_run("netrun", team="team-net", route_name="simple")
    run["spec"]["tools"] = [{"name": "git", "url": TOOL_IN_CLUSTER}, {"name": "web", "url": TOOL_OUTSIDE}]
    world.apply(run)
    status = wait_for(
        lambda: (s := world.run_status("netrun")) and s.get("jobName") and s,
        timeout=60,
        what="the run's Job",
        describe=world.describe,
    )
    policy = get(world.plane, world.namespace, "networkpolicy", "netrun-runner")
    job = get(world.plane, world.namespace, "job", status["jobName"])
    assert policy is not None and job is not None, world.describe()
    owner = get(world.plane, world.namespace, "agentrun", "netrun")
    assert owner is not None
    [reference] = policy["metadata"]["ownerReferences"]
    assert (reference["kind"], reference["uid"]) == ("AgentRun", owner["metadata"]["uid"])
    assert int(policy["metadata"]["resourceVersion"]) < int(job["metadata"]["resourceVersion"])
    spec: dict[str, Any] = policy["spec"]
    assert spec["podSelector"]["matchLabels"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert not spec.get("ingress")
    assert spec["egress"] == [
        ROUTER_RULE,
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": world.namespace}},
                    "podSelector": {"matchLabels": {"app": "git-mcp"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 3000}],
        },
    ]
    events = world.plane.kubectl(
        "get", "events", "-n", world.namespace, "--field-selector", "involvedObject.name=netrun", "-o", "json"
    ).stdout
    warnings = [e["message"] for e in json.loads(events)["items"] if e["reason"] == "ToolServerNotAllowed"]
    assert len(warnings) == 1 and "'web'" in warnings[0] and "outside the cluster" in warnings[0]
    world.plane.kubectl("delete", "-n", world.namespace, "agentrun", "netrun", "--wait=false")
    wait_for(
        lambda: get(world.plane, world.namespace, "networkpolicy", "netrun-runner") is None,
        timeout=60,
        what="the garbage collector to delete the run's NetworkPolicy",
        describe=world.describe,
    )
