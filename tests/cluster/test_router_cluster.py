"""The router serves what the cluster says (issue 13): `jesus router` watches the ModelAdapters,
RoutePolicies and Secrets of the real API server, so objects applied after it started serve runs with
no restart; a run keeps the route it registered with when its RoutePolicy is edited; a self-hosted
adapter is called at the endpoint its status names; and a router killed between two model calls of a
run is replaced without the run noticing, billed once."""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.builders.adapters import answering_adapter, scripted_adapter, vllm_adapter
from tests.builders.agentrun import hello_run
from tests.builders.budget import team_budget
from tests.builders.manifest import manifest
from tests.builders.processes import call_record
from tests.builders.routes import failover_route, route_policy
from tests.cluster.harness import (
    ADMIN_TOKEN,
    JESUS,
    REPO,
    OperatorWorld,
    Process,
    apply,
    get,
    http_ready,
    operator_world,
    policies_allowing,
    wait_for,
)
from tests.providers import FakeToolCall, Reply, serve_in_thread
from tests.providers.openai_wire import OpenAIWire

from jesus.devcluster import ControlPlane
from jesus.devcluster.controlplane import free_port

GATE_SERVER = REPO / "tests" / "cluster" / "servers" / "gate_server.py"
UPSTREAM_KEY = "sk-upstream-from-the-cluster-secret"
TEAM = "routes"


@pytest.fixture(scope="module")
def router(crds: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, str]]:
    """`jesus router` watching every namespace (and no operator), shared by the tests that each use a
    namespace of their own: the process and its URL."""
    port = free_port()
    process = Process(
        "router",
        [*JESUS, "router", f"--port={port}"],
        {**crds.env, "JESUS_ROUTER_ADMIN_TOKEN": ADMIN_TOKEN},
        tmp_path_factory.mktemp("router") / "router.log",
    )
    process.start()
    try:
        wait_for(lambda: http_ready(port), what="the router", describe=process.tail)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file the gate tool server waits for."""
    return tmp_path_factory.mktemp("gate") / "open"


@pytest.fixture(scope="module")
def world(
    control_plane: ControlPlane, gate: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorWorld]:
    """Router, operator and runtime for one namespace with only a Budget in it; its policies allow the
    gate tool server."""
    workdir = tmp_path_factory.mktemp("world")
    with operator_world(
        control_plane,
        workdir,
        "routes",
        [team_budget(TEAM, TEAM, "10.00")],
        policies=policies_allowing(gate_server_args(gate), workdir),
    ) as world:
        yield world


def gate_server_args(gate: Path) -> list[str]:
    return [str(GATE_SERVER), str(gate)]


def register(url: str, namespace: str, run: str, route: str) -> httpx.Response:
    """POST /admin/v1/runs as the operator does."""
    return httpx.post(
        f"{url}/admin/v1/runs",
        json={"run": run, "namespace": namespace, "routePolicy": route, "dataClassification": "internal"},
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )


def refused(url: str, namespace: str, run: str, route: str, reason: str) -> str | None:
    """The 409's message once it names `reason` (the router has seen every object involved), else None."""
    answer = register(url, namespace, run, route)
    message = str(answer.json()["error"]["message"]) if answer.status_code == 409 else ""
    return message if reason in message else None


def registered(url: str, namespace: str, run: str, route: str, chain: list[str]) -> dict[str, Any] | None:
    """The registration's answer once the router grants `route` with `chain` (it has seen the
    objects), else None."""
    answer = register(url, namespace, run, route)
    if answer.status_code == 201 and answer.json()["chain"] == chain:
        return dict(answer.json())
    return None


def test_an_edited_route_policy_changes_new_runs_and_not_a_registered_one(
    crds: ControlPlane, namespace: str, router: tuple[Process, str]
) -> None:
    process, url = router
    # Applied after the router started: it learns them from its watches, with no restart.
    apply(
        crds,
        namespace,
        scripted_adapter("first", text="first answers"),
        scripted_adapter("second", text="second answers", input_price="5.00"),
        route_policy("route", ("first",)),
    )
    admitted = wait_for(
        lambda: registered(url, namespace, "early", "route", [f"{namespace}/first"]),
        what="the router to serve the route applied after it started",
        describe=process.tail,
    )
    apply(crds, namespace, route_policy("route", ("second",)))
    wait_for(
        lambda: registered(url, namespace, "late", "route", [f"{namespace}/second"]),
        what="the router to see the edited RoutePolicy",
        describe=process.tail,
    )
    record = call_record(url, admitted["token"])
    assert record["adapter"] == f"{namespace}/first"  # the chain the run registered with
    assert record["costMicros"] == 10 * 1 + 5 * 2  # and its prices


def test_a_deleted_route_policy_refuses_new_runs_with_its_name(
    crds: ControlPlane, namespace: str, router: tuple[Process, str]
) -> None:
    process, url = router
    apply(crds, namespace, scripted_adapter("only"), route_policy("gone", ("only",)))
    wait_for(
        lambda: registered(url, namespace, "before", "gone", [f"{namespace}/only"]),
        what="the route",
        describe=process.tail,
    )
    crds.kubectl("delete", "routepolicy", "gone", "-n", namespace)
    wait_for(
        lambda: refused(url, namespace, "after", "gone", f"RoutePolicy {namespace}/gone is not known"),
        what="the router to forget the deleted RoutePolicy",
        describe=process.tail,
    )


def test_a_self_hosted_adapter_is_called_at_the_endpoint_its_status_names(
    crds: ControlPlane, namespace: str, router: tuple[Process, str]
) -> None:
    process, url = router
    with serve_in_thread(OpenAIWire("vllm"), default=Reply(text="served by our own model")) as model:
        apply(crds, namespace, vllm_adapter("llama"), route_policy("served", ("llama",)))
        # No endpoint in status yet (the serving Deployment is not ready): the router says so.
        wait_for(
            lambda: refused(url, namespace, "early", "served", "llama is served by the platform"),
            what="a refusal while the adapter has no endpoint",
            describe=process.tail,
        )
        crds.kubectl(
            "patch",
            "modeladapter",
            "llama",
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            f'{{"status": {{"endpoint": "{model.base_url}", "selfHosted": true}}}}',
        )
        admitted = wait_for(
            lambda: registered(url, namespace, "served-run", "served", [f"{namespace}/llama"]),
            what="the router to build the adapter from its status endpoint",
            describe=process.tail,
        )
        record = call_record(url, admitted["token"])
    assert record["adapter"] == f"{namespace}/llama"
    assert len(model.requests) == 1
    assert model.requests[0].json["model"] == "meta-llama/Llama-3.1-8B-Instruct"


def test_a_credential_secret_applied_later_makes_its_adapter_callable(
    crds: ControlPlane, namespace: str, router: tuple[Process, str]
) -> None:
    process, url = router
    with serve_in_thread(OpenAIWire("openai"), default=Reply(text="hello")) as upstream:
        apply(
            crds, namespace, upstream_adapter("keyed", upstream.base_url), route_policy("keyed", ("keyed",))
        )
        wait_for(
            lambda: refused(url, namespace, "early", "keyed", "no credential for Secret upstream-key"),
            what="a refusal while the Secret is missing",
            describe=process.tail,
        )
        apply(crds, namespace, upstream_secret())
        admitted = wait_for(
            lambda: registered(url, namespace, "keyed-run", "keyed", [f"{namespace}/keyed"]),
            what="the router to pick up the Secret",
            describe=process.tail,
        )
        call_record(url, admitted["token"])
    assert upstream.requests[0].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    log = process.log.read_text()
    assert UPSTREAM_KEY not in log


def upstream_adapter(name: str, base_url: str) -> dict[str, Any]:
    """An OpenAI-compatible adapter at `base_url` whose key is in the Secret `upstream-key`."""
    return manifest(
        "ModelAdapter",
        name,
        {
            "provider": "openai-compatible",
            "model": "upstream-1",
            "endpoint": base_url,
            "credentialsSecretRef": {"name": "upstream-key", "key": "apiKey"},
            "pricing": {"inputPerMillionTokens": "1.00", "outputPerMillionTokens": "2.00"},
            "dataClassifications": ["public", "internal"],
        },
    )


def upstream_secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "upstream-key"},
        "data": {"apiKey": base64.b64encode(UPSTREAM_KEY.encode()).decode()},
    }


def test_objects_applied_after_the_router_started_serve_a_run(world: OperatorWorld) -> None:
    world.apply(answering_adapter("newcomer"), failover_route("new-route", "newcomer"))
    world.apply(hello_run("late-run", team=TEAM, route_name="new-route"))
    status = world.wait_phase("late-run", "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Succeeded", world.describe()
    assert status["calls"][0]["adapter"] == "newcomer"


def test_a_router_killed_between_two_model_calls_is_replaced_and_the_run_billed_once(
    world: OperatorWorld, gate: Path
) -> None:
    before = spent(world)
    with serve_in_thread(OpenAIWire("openai")) as upstream:
        upstream.script(
            Reply(tool_calls=(FakeToolCall("call-1", "wait_for_gate"),), input_tokens=100, output_tokens=20),
            Reply(text="done after the gate", input_tokens=150, output_tokens=30),
        )
        world.apply(upstream_secret(), upstream_adapter("upstream", upstream.base_url))
        world.apply(failover_route("upstream", "upstream"))
        run = hello_run("survivor", team=TEAM, route_name="upstream", max_cost="1.00")
        run["spec"]["tools"] = [
            {"name": "gate", "stdio": {"command": sys.executable, "args": gate_server_args(gate)}}
        ]
        run["spec"]["limits"]["maxTurns"] = 4
        world.apply(run)
        wait_for(
            lambda: len(upstream.requests) == 1, timeout=90, what="the first call", describe=world.describe
        )
        world.router.kill()  # SIGKILL: nothing of the run's registration is left in any process
        world.router.start()
        wait_for(lambda: http_ready(world.router_port), what="the new router", describe=world.router.tail)
        gate.touch()
        status = world.wait_phase("survivor", "Succeeded", "Failed", timeout=90)
        after = wait_for(
            lambda: (figure := spent(world)) > before and figure,
            what="the budget to settle",
            describe=world.describe,
        )
    assert status["phase"] == "Succeeded", world.describe()
    assert len(upstream.requests) == 2  # each model call reached the provider once
    costs = [call["costMicros"] for call in status["calls"]]
    assert costs == [100 * 1 + 20 * 2, 150 * 1 + 30 * 2]
    assert status["costMicros"] == sum(costs)
    assert after - before == sum(costs)  # billed once
    assert all(request.headers["authorization"] == f"Bearer {UPSTREAM_KEY}" for request in upstream.requests)


def spent(world: OperatorWorld) -> int:
    """What the team's Budget has spent."""
    budget = get(world.plane, world.namespace, "budget", TEAM) or {}
    return int((budget.get("status") or {}).get("spentMicros", 0))
