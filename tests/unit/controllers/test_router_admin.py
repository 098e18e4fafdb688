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
from jesus.controllers.router_admin import RouterAdminClient, RouterRegistrationError, registration_of
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
