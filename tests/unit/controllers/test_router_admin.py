"""The operator registers runs with the typed registration the router validates (jesus.api.registration)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from tests.builders.adapters import scripted_adapter
from tests.builders.agentrun import agent_run
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

from jesus.api import AgentRun
from jesus.api.common import DataClassification
from jesus.api.registration import RunRegistration
from jesus.cli.router import build_service
from jesus.controllers.router_admin import (
    ProjectedToken,
    RouterAdminClient,
    RouterRegistrationError,
    registration_of,
)
from jesus.router.service import build_app
from jesus.specs import load_text

ADMIN = "admin-token"


def run_of(**spec: object) -> AgentRun:
    body = agent_run(namespace="team")
    body["spec"].update(spec)
    return AgentRun.model_validate(body)


async def test_the_client_posts_the_typed_registration() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"token": "issued"})

    client = RouterAdminClient("http://router", ADMIN, transport=httpx.MockTransport(answer))
    run = run_of(dataClassification="confidential", limits={"maxCost": "0.50", "maxTokens": 900})
    assert await client.register(run) == "issued"
    await client.aclose()
    (request,) = seen
    assert request.url.path == "/admin/v1/runs"
    assert request.headers["authorization"] == f"Bearer {ADMIN}"
    body = json.loads(request.content)
    # What the router validates is exactly what the operator built.
    assert RunRegistration.model_validate(body) == registration_of(run)
    assert body == {
        "run": "run",
        "namespace": "team",
        "routePolicy": "route",
        "dataClassification": "confidential",
        "maxTokens": 900,
        "maxCostMicros": 500_000,
        "ttlSeconds": 7 * 24 * 3600,
    }


async def test_a_refusal_is_a_registration_error_with_the_routers_reason() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(409, json={"error": {"message": "RoutePolicy team/route is not known"}})

    client = RouterAdminClient("http://router", ADMIN, transport=httpx.MockTransport(refuse))
    with pytest.raises(RouterRegistrationError, match=r"409.*not known"):
        await client.register(run_of())
    await client.aclose()


async def test_the_router_accepts_what_the_operator_sends_and_pins_its_route() -> None:
    specs = load_text(to_yaml(scripted_adapter(namespace="team"), route_policy("route", namespace="team")))
    service = build_service(
        specs, live=False, secrets_dir=Path("/nonexistent"), admin_token=ADMIN, registry=CollectorRegistry()
    )
    transport = httpx.ASGITransport(app=build_app(service))
    client = RouterAdminClient("http://router", ADMIN, transport=transport)
    token = await client.register(run_of())
    await client.aclose()
    route = await service.resolve_token(token)
    assert route is not None and (route.run, route.namespace) == ("run", "team")
    assert route.plan.chain == ("team/scripted",)
    assert route.ledger.allowance.max_cost_micros == 500_000


def test_the_registration_refuses_bad_values_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="route_policy"):
        RunRegistration.create(run="run", route_policy="Not A Name")
    registration = RunRegistration.create(run="run", route_policy="route")
    assert registration.namespace == "default"
    assert registration.data_classification is DataClassification.INTERNAL


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_client_presents_the_projected_token_and_picks_up_a_renewed_one(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first-token\n")
    clock = Clock()
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(201, json={"token": "issued"})

    client = RouterAdminClient(
        "http://router", ProjectedToken(path, clock, reread_seconds=60), transport=httpx.MockTransport(answer)
    )
    await client.register(run_of())
    path.write_text("renewed-token")  # the kubelet renews the projected token
    clock.now = 59.0
    await client.register(run_of())
    clock.now = 60.0
    await client.register(run_of())
    await client.aclose()
    assert seen == ["Bearer first-token", "Bearer first-token", "Bearer renewed-token"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot be read from"),
        ("", "holds no service-account token"),
        ("two words", "holds no service-account token"),
        ("x" * 9000, "longer than 8192 bytes"),
    ],
)
async def test_a_missing_or_careless_token_file_is_a_registration_error_naming_it(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    client = RouterAdminClient(
        "http://router",
        ProjectedToken(path, Clock()),
        transport=httpx.MockTransport(lambda r: httpx.Response(201, json={"token": "t"})),
    )
    with pytest.raises(RouterRegistrationError, match=message) as caught:
        await client.register(run_of())
    assert str(path) in str(caught.value)
    await client.aclose()
