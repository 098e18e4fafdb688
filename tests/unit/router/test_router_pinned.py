"""A run keeps the route and prices it was registered with (ADR 16): on another replica, after a restart,
and after its RoutePolicy or an adapter's prices change; a deleted adapter is skipped, then refused."""

from __future__ import annotations

import dataclasses
import hashlib

import httpx2
from prometheus_client import CollectorRegistry
from tests.builders.adapters import scripted_adapter
from tests.builders.manifest import Obj
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

from jesus.cli.router import build_service
from jesus.logic.allowance import CallPrice
from jesus.logic.routing import RoutePlan
from jesus.router.service import RouterService, build_app
from jesus.specs import load_text

from .test_router_service import ROUTER_SECRETS, chat

ADMIN = "shared-admin"
# Each scripted answer uses 10 input and 5 output tokens.
ADMITTED_COST = 10 * 1 + 5 * 2  # micros at 1.00 / 2.00 per million tokens
EDITED_COST = 10 * 9 + 5 * 9  # at 9.00 / 9.00


def replica(*objects: Obj) -> RouterService:
    """A router process over `objects`, as `jesus router --specs` builds it."""
    specs = load_text(to_yaml(*objects))
    return build_service(
        specs, live=False, secrets_dir=ROUTER_SECRETS, admin_token=ADMIN, registry=CollectorRegistry()
    )


def admitted() -> RouterService:
    """The router the run was registered with: chain primary, fallback at 1.00 / 2.00."""
    return replica(
        scripted_adapter("primary", text="primary answers"),
        scripted_adapter("fallback", text="fallback answers"),
        route_policy("route", ("primary", "fallback")),
    )


async def send(
    service: RouterService, path: str, token: str, json: object, method: str = "POST"
) -> httpx2.Response:
    transport = httpx2.ASGITransport(app=build_app(service))
    async with httpx2.AsyncClient(transport=transport, base_url="http://router") as client:
        return await client.request(method, path, json=json, headers={"authorization": f"Bearer {token}"})


async def register(service: RouterService) -> str:
    answer = await send(service, "/admin/v1/runs", ADMIN, {"run": "r", "routePolicy": "route"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


async def record_of(service: RouterService, token: str) -> dict[str, object]:
    answer = await send(service, "/v1/chat/completions", token, chat())
    assert answer.status_code == 200, answer.text
    record: dict[str, object] = answer.json()["jesus"]
    return record


async def test_registration_pins_the_chain_and_the_prices_of_the_moment() -> None:
    service = admitted()
    token = await register(service)
    route = await service.resolve_token(token)
    assert route is not None
    assert route.plan.chain == ("default/primary", "default/fallback")
    assert route.plan.prices == {
        "default/primary": CallPrice(1_000_000, 2_000_000),
        "default/fallback": CallPrice(1_000_000, 2_000_000),
    }
    assert service.signer is not None
    grant = service.signer.verify(token, now=0)
    assert grant is not None and grant.plan == route.plan


async def test_an_edited_route_and_new_prices_do_not_reach_a_registered_run() -> None:
    token = await register(admitted())
    # Restarted with the RoutePolicy edited (another chain) and the adapters' prices raised.
    edited = replica(
        scripted_adapter("primary", text="primary answers", input_price="9.00", output_price="9.00"),
        scripted_adapter("fallback", text="fallback answers", input_price="9.00", output_price="9.00"),
        scripted_adapter("newcomer", text="newcomer answers", input_price="9.00", output_price="9.00"),
        route_policy("route", ("newcomer", "fallback")),
    )
    record = await record_of(edited, token)
    assert record["adapter"] == "default/primary"
    assert record["costMicros"] == ADMITTED_COST
    # A run registered now gets the edited route and prices.
    fresh = await record_of(edited, await register(edited))
    assert fresh["adapter"] == "default/newcomer"
    assert fresh["costMicros"] == EDITED_COST


async def test_a_deleted_adapter_is_skipped_and_the_rest_of_the_pinned_chain_serves() -> None:
    token = await register(admitted())
    without_primary = replica(
        scripted_adapter("fallback", text="fallback answers"), route_policy("route", ("fallback",))
    )
    record = await record_of(without_primary, token)
    assert record["adapter"] == "default/fallback"
    attempts = record["attempts"]
    assert isinstance(attempts, list)
    assert attempts[0]["adapter"] == "default/primary"
    assert attempts[0]["outcome"] == "skipped"
    assert attempts[0]["errorKind"] == "NoAdapterAvailable"
    assert "no longer exists" in attempts[0]["error"]


async def test_when_every_pinned_adapter_is_deleted_the_error_names_them() -> None:
    token = await register(admitted())
    others = replica(scripted_adapter("newcomer"), route_policy("route", ("newcomer",)))
    answer = await send(others, "/v1/chat/completions", token, chat())
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "NoAdapterAvailable"
    assert "deleted: default/primary, default/fallback" in error["message"]


async def test_a_route_that_does_not_fit_a_token_is_refused_at_registration() -> None:
    service = admitted()
    service.resolve_plan = lambda namespace, policy, classification: _huge_plan(service)
    answer = await send(service, "/admin/v1/runs", ADMIN, {"run": "r", "routePolicy": "route"})
    assert answer.status_code == 409
    assert "does not fit a token" in answer.json()["error"]["message"]


def _huge_plan(service: RouterService) -> RoutePlan:
    """A plan over many adapters with long names that do not compress."""
    names = [f"default/{hashlib.sha512(str(i).encode()).hexdigest()}{i}" for i in range(40)]
    for name in names:
        service.router.adapters[name] = dataclasses.replace(
            service.router.adapters["default/primary"], name=name
        )
    return RoutePlan(chain=tuple(names))
