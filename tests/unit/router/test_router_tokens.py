"""Signed run tokens: any replica accepts them, nobody can forge or stretch them."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json

import httpx2
import pytest
from prometheus_client import CollectorRegistry
from tests.builders.adapters import scripted_adapter
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

from jesus.cli.router import build_service
from jesus.logic.allowance import CallPrice
from jesus.logic.routing import RetryPolicy, RoutePlan
from jesus.router.service import RouterService, build_app
from jesus.router.tokens import MAX_TOKEN_LENGTH, RunGrant, TokenSigner, TokenTooLongError
from jesus.specs import load_text

from .test_router_service import ROUTER_SECRETS, chat

PLAN = RoutePlan(
    chain=("team-a/primary", "team-a/fallback"),
    failover_on=frozenset({"RateLimited", "Timeout"}),
    attempt_timeout_seconds=12.5,
    retry=RetryPolicy(max_retries=2, backoff_base_seconds=0.01, backoff_max_seconds=0.5),
    failover_deadline_seconds=30.0,
    prices={
        "team-a/primary": CallPrice(3_000_000, 15_000_000),
        "team-a/fallback": CallPrice(400_000, 1_600_000),
    },
)
DNS = "abcdefghijklmnopqrstuvwxyz0123456789-"
GRANT = RunGrant(
    "run-a", "team-a", "route", "internal", 1000, 500_000, expires_at=2_000, nonce="n1", plan=PLAN
)


def _with_bigger_allowance(token: str, signer: TokenSigner) -> str:
    """The token's signature on a payload that grants a thousand times more money."""
    richer = signer.sign(dataclasses.replace(GRANT, max_cost_micros=(GRANT.max_cost_micros or 0) * 1000))
    prefix, payload, _ = richer.split(".")
    return f"{prefix}.{payload}.{token.split('.')[2]}"


def test_a_signed_grant_verifies_until_it_expires() -> None:
    signer = TokenSigner("admin-secret")
    token = signer.sign(GRANT)
    assert token.startswith("jr2.")
    assert signer.verify(token, now=1_999) == GRANT
    assert signer.verify(token, now=2_000) is None


def test_the_token_carries_the_pinned_plan_whole() -> None:
    verified = TokenSigner("admin-secret").verify(TokenSigner("admin-secret").sign(GRANT), now=0)
    assert verified is not None and verified.plan == PLAN
    assert verified.plan.prices["team-a/primary"] == CallPrice(3_000_000, 15_000_000)
    assert verified.plan.retry.max_retries == 2 and verified.plan.failover_deadline_seconds == 30.0


def test_a_token_of_the_first_format_verifies_without_a_plan() -> None:
    """Tokens issued before plans were pinned keep working until they expire (their route is resolved
    from the RoutePolicy, as before)."""
    signer = TokenSigner("admin-secret")
    legacy = {
        k: v for k, v in dataclasses.asdict(dataclasses.replace(GRANT, plan=None)).items() if k != "plan"
    }
    payload = base64.urlsafe_b64encode(json.dumps(legacy).encode()).rstrip(b"=").decode()
    token = f"jr1.{payload}.{signer._mac(payload)}"
    assert signer.verify(token, now=0) == dataclasses.replace(GRANT, plan=None)


def test_a_five_adapter_chain_makes_a_short_token() -> None:
    names = [
        f"team-platform/{model}" for model in ("claude-sonnet", "gpt-4-1", "gemini-pro", "llama", "qwen")
    ]
    plan = RoutePlan(chain=tuple(names), prices={n: CallPrice(3_000_000, 15_000_000) for n in names})
    token = TokenSigner("admin-secret").sign(dataclasses.replace(GRANT, plan=plan))
    assert len(token) < 1024, len(token)


def _names(count: int, length: int, alphabet: str) -> list[str]:
    """`count` adapter names of `length` characters that hardly compress (drawn from digests)."""
    names = []
    for i in range(count):
        digest = b"".join(hashlib.sha256(f"{i}.{j}".encode()).digest() for j in range(length // 16 + 1))
        names.append("".join(alphabet[byte % len(alphabet)] for byte in digest[:length]))
    return names


def test_the_longest_route_a_route_policy_allows_fits_a_token() -> None:
    # Eight adapters (the chain's maximum), namespace and name at their longest.
    names = [f"{ns}/{name}" for ns, name in zip(_names(8, 63, "abc123"), _names(8, 253, DNS), strict=True)]
    plan = RoutePlan(chain=tuple(names), prices={n: CallPrice(123_456_789, 987_654_321) for n in names})
    token = TokenSigner("admin-secret").sign(dataclasses.replace(GRANT, plan=plan))
    assert TokenSigner("admin-secret").verify(token, now=0) is not None


def test_a_route_too_long_for_a_bearer_header_is_not_signed() -> None:
    names = _names(20, 300, DNS.upper() + DNS + "_")
    plan = RoutePlan(chain=tuple(names), prices={n: CallPrice() for n in names})
    with pytest.raises(TokenTooLongError, match=str(MAX_TOKEN_LENGTH)):
        TokenSigner("admin-secret").sign(dataclasses.replace(GRANT, plan=plan))


def test_only_a_pinned_plan_is_signed() -> None:
    with pytest.raises(ValueError, match="pinned"):
        TokenSigner("admin-secret").sign(dataclasses.replace(GRANT, plan=None))
    with pytest.raises(ValueError, match="pinned prices"):
        TokenSigner("admin-secret").sign(dataclasses.replace(GRANT, plan=RoutePlan(chain=("a",))))


def _with_cheaper_prices(token: str, signer: TokenSigner) -> str:
    """The token's signature on a payload whose pinned prices are zero."""
    assert GRANT.plan is not None
    free = dataclasses.replace(GRANT.plan, prices={n: CallPrice() for n in GRANT.plan.chain})
    cheaper = signer.sign(dataclasses.replace(GRANT, plan=free))
    return f"{cheaper.rsplit('.', 1)[0]}.{token.split('.')[2]}"


@pytest.mark.parametrize(
    "forge",
    [
        lambda token, signer: TokenSigner("another-secret").sign(GRANT),
        lambda token, signer: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        lambda token, signer: _with_bigger_allowance(token, signer),
        lambda token, signer: _with_cheaper_prices(token, signer),
        lambda token, signer: "jr1." + token.split(".", 1)[1],
        lambda token, signer: "jr1.not-base64!.x",
        lambda token, signer: "random-token",
    ],
    ids=[
        "other-key",
        "changed-mac",
        "swapped-payload",
        "cheaper-prices",
        "format-swapped",
        "garbage",
        "unsigned",
    ],
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
    assert revoked.status_code == 200
    # The second replica never routed the token and keeps accounts in its memory: it cannot say.
    assert revoked.json() == {"run": "r", "metered": None}
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
