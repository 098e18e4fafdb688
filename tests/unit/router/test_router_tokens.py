"""Signed run tokens: any replica accepts them, nobody can forge or stretch them."""

from __future__ import annotations

import dataclasses

import httpx2
import pytest
from prometheus_client import CollectorRegistry
from tests.builders.adapters import scripted_adapter
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

from jesus.cli.router import build_service
from jesus.router.service import RouterService, build_app
from jesus.router.tokens import RunGrant, TokenSigner
from jesus.specs import load_text

from .test_router_service import ROUTER_SECRETS, chat

GRANT = RunGrant("run-a", "team-a", "route", "internal", 1000, 500_000, expires_at=2_000, nonce="n1")


def _with_bigger_allowance(token: str, signer: TokenSigner) -> str:
    """The token's signature on a payload that grants a thousand times more money."""
    richer = signer.sign(dataclasses.replace(GRANT, max_cost_micros=(GRANT.max_cost_micros or 0) * 1000))
    prefix, payload, _ = richer.split(".")
    return f"{prefix}.{payload}.{token.split('.')[2]}"


def test_a_signed_grant_verifies_until_it_expires() -> None:
    signer = TokenSigner("admin-secret")
    token = signer.sign(GRANT)
    assert token.startswith("jr1.")
    assert signer.verify(token, now=1_999) == GRANT
    assert signer.verify(token, now=2_000) is None


@pytest.mark.parametrize(
    "forge",
    [
        lambda token, signer: TokenSigner("another-secret").sign(GRANT),
        lambda token, signer: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        lambda token, signer: _with_bigger_allowance(token, signer),
        lambda token, signer: "jr1.not-base64!.x",
        lambda token, signer: "random-token",
    ],
    ids=["other-key", "changed-mac", "swapped-payload", "garbage", "unsigned"],
)
def test_forged_or_altered_tokens_are_refused(forge: object) -> None:
    signer = TokenSigner("admin-secret")
    token = signer.sign(GRANT)
    assert callable(forge)
    assert signer.verify(forge(token, signer), now=0) is None


def replica(now: list[float]) -> RouterService:
    specs = load_text(
        to_yaml(scripted_adapter("scripted", text="any replica answers"), route_policy("route"))
    )
    service = build_service(
        specs,
        live=False,
        secrets_dir=ROUTER_SECRETS,
        admin_token="shared-admin",
        registry=CollectorRegistry(),
    )
    service.clock = lambda: now[0]
    return service


async def post(service: RouterService, path: str, token: str, json: object) -> httpx2.Response:
    transport = httpx2.ASGITransport(app=build_app(service))
    async with httpx2.AsyncClient(transport=transport, base_url="http://router") as client:
        return await client.post(path, json=json, headers={"authorization": f"Bearer {token}"})


async def test_a_token_from_one_replica_works_on_another_until_it_expires() -> None:
    now = [1_000.0]
    first, second = replica(now), replica(now)
    registered = await post(
        first, "/admin/v1/runs", "shared-admin", {"run": "r", "routePolicy": "route", "ttlSeconds": 60}
    )
    token = registered.json()["token"]
    answer = await post(second, "/v1/chat/completions", token, chat())
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "any replica answers"
    now[0] += 61
    expired = await post(second, "/v1/chat/completions", token, chat())
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]


async def test_a_revoked_token_stays_refused_on_that_replica() -> None:
    now = [1_000.0]
    first, second = replica(now), replica(now)
    token = (
        await post(first, "/admin/v1/runs", "shared-admin", {"run": "r", "routePolicy": "route"})
    ).json()["token"]
    transport = httpx2.ASGITransport(app=build_app(second))
    async with httpx2.AsyncClient(transport=transport, base_url="http://router") as client:
        revoked = await client.delete(
            "/admin/v1/runs", params={"token": token}, headers={"authorization": "Bearer shared-admin"}
        )
    assert revoked.status_code == 204
    assert (await post(second, "/v1/chat/completions", token, chat())).status_code == 401


async def test_registering_forgets_expired_runs() -> None:
    now = [1_000.0]
    service = replica(now)
    await post(
        service, "/admin/v1/runs", "shared-admin", {"run": "old", "routePolicy": "route", "ttlSeconds": 10}
    )
    assert len(service.registry) == 1
    now[0] += 11
    await post(service, "/admin/v1/runs", "shared-admin", {"run": "new", "routePolicy": "route"})
    assert len(service.registry) == 1
