"""Revoking a run token answers what it metered (DELETE /admin/v1/runs): the operator charges an attempt
that could not report its calls (preempted, killed) what the router counted, in flight included."""

from __future__ import annotations

import httpx
import httpx2
import pytest

from jesus.api.registration import MeteredSpend
from jesus.controllers.router_admin import RouterAdminClient, RouterRegistrationError
from jesus.logic.allowance import CallPrice
from jesus.router.accounts import token_key
from jesus.router.service import build_app

from .test_router_service import chat
from .test_router_tokens import post, replica


async def delete(service: object, token: str, admin: str = "shared-admin") -> httpx2.Response:
    transport = httpx2.ASGITransport(app=build_app(service))  # type: ignore[arg-type]
    async with httpx2.AsyncClient(transport=transport, base_url="http://router") as client:
        return await client.delete(
            "/admin/v1/runs", params={"token": token}, headers={"authorization": f"Bearer {admin}"}
        )


async def test_a_revoked_token_answers_its_spending_and_the_worst_case_still_in_flight() -> None:
    service = replica([1_000.0])
    token = (
        await post(service, "/admin/v1/runs", "shared-admin", {"run": "r", "routePolicy": "route"})
    ).json()["token"]
    spent = (await post(service, "/v1/chat/completions", token, chat())).json()["jesus"]
    route = service.registry.resolve(token)
    assert route is not None
    # A call admitted and not yet settled when the pod died: its reservation counts at its worst case.
    _, held = await route.ledger.admit(
        requested_output_tokens=100, max_input_tokens=50, price=CallPrice(1_000_000, 2_000_000)
    )
    assert held is not None
    answer = await delete(service, token)
    assert answer.status_code == 200
    metered = MeteredSpend.model_validate(answer.json()["metered"])
    assert (metered.tokens, metered.cost_micros) == (
        spent["inputTokens"] + spent["outputTokens"],
        spent["costMicros"],
    )
    assert (metered.in_flight_tokens, metered.in_flight_cost_micros) == (held.tokens, held.cost_micros)
    assert metered.charge_micros == spent["costMicros"] + held.cost_micros
    # Asked again (the operator's reconcile interrupted after the first answer): the same figures.
    assert (await delete(service, token)).json()["metered"] == answer.json()["metered"]
    assert (await post(service, "/v1/chat/completions", token, chat())).status_code == 401


@pytest.mark.parametrize("token", ["", "not-a-token", "jr2.forged.mac", "a" * 5000])
async def test_a_token_nobody_issued_is_not_found_and_metered_nothing(token: str) -> None:
    service = replica([1_000.0])
    answer = await delete(service, token)
    assert answer.status_code == 404
    assert token_key(token) not in service.accounts._revoked  # type: ignore[attr-defined]


async def test_revoking_needs_the_admin_credential() -> None:
    service = replica([1_000.0])
    token = (
        await post(service, "/admin/v1/runs", "shared-admin", {"run": "r", "routePolicy": "route"})
    ).json()["token"]
    assert (await delete(service, token, admin="guess")).status_code == 401
    assert (await post(service, "/v1/chat/completions", token, chat())).status_code == 200


async def test_the_operators_client_reads_the_figures_and_names_a_garbled_answer() -> None:
    service = replica([1_000.0])
    client = RouterAdminClient(
        "http://router", "shared-admin", transport=httpx.ASGITransport(app=build_app(service))
    )
    token = (
        await post(service, "/admin/v1/runs", "shared-admin", {"run": "r", "routePolicy": "route"})
    ).json()["token"]
    await post(service, "/v1/chat/completions", token, chat())
    metered = await client.revoke(token)
    assert metered is not None and metered.cost_micros > 0
    assert await client.revoke("nobody-issued-this") is None
    await client.aclose()

    def garbled(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"metered": {"costMicros": -5}})

    hostile = RouterAdminClient("http://router", "shared-admin", transport=httpx.MockTransport(garbled))
    with pytest.raises(RouterRegistrationError, match="not a metered spend"):
        await hostile.revoke(token)
    await hostile.aclose()
