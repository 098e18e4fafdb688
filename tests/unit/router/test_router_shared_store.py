"""Two router replicas over one Redis, as `jesus router --redis-url` builds them (in process): one run's
calls spread over both never spend more than its allowance, a token revoked through one is refused by
both, and every failure of the store (down, emptied, spoilt) is a 503 `SharedStoreUnavailable` with a
Retry-After, never a call sent without a reservation. `--redis-url` itself is checked before anything
starts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx2
import pytest
from prometheus_client import CollectorRegistry
from tests.builders.adapters import scripted_adapter
from tests.builders.doubles import FakeClock
from tests.builders.redis_server import RedisServer
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

from jesus.cli import CommandError
from jesus.cli.router import REDIS_URL_VARIABLE, build_service, build_store
from jesus.router.accounts import token_key
from jesus.router.redis_store import RedisAccountStore
from jesus.router.service import RouterService, build_app
from jesus.specs import load_text

from .test_router_service import ROUTER_SECRETS, chat

ADMIN = "replicas-admin"


def replica(url: str) -> RouterService:
    """One router process, as `jesus router --redis-url URL` builds it."""
    specs = load_text(
        to_yaml(
            scripted_adapter(
                "model", replies=[{"text": "ok", "usage": {"inputTokens": 10, "outputTokens": 1}}] * 200
            ),
            route_policy("route", ("model",)),
        )
    )
    store = build_store(url)
    assert isinstance(store, RedisAccountStore)
    return build_service(
        specs,
        live=False,
        secrets_dir=ROUTER_SECRETS,
        admin_token=ADMIN,
        registry=CollectorRegistry(),
        store=store,
    )


@pytest.fixture
async def replicas(redis_server: RedisServer) -> AsyncIterator[tuple[RouterService, RouterService]]:
    first, second = replica(redis_server.url), replica(redis_server.url)
    yield first, second
    for service in (first, second):
        await service.accounts.aclose()


async def send(
    service: RouterService, path: str, token: str, body: object = None, method: str = "POST"
) -> httpx2.Response:
    transport = httpx2.ASGITransport(app=build_app(service))
    async with httpx2.AsyncClient(transport=transport, base_url="http://router") as client:
        return await client.request(method, path, json=body, headers={"authorization": f"Bearer {token}"})


async def register(service: RouterService, **limits: int) -> str:
    answer = await send(service, "/admin/v1/runs", ADMIN, {"run": "r", "routePolicy": "route", **limits})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


async def revoke(service: RouterService, token: str) -> httpx2.Response:
    return await send(service, f"/admin/v1/runs?token={token}", ADMIN, method="DELETE")


async def test_one_runs_calls_over_two_replicas_never_pass_its_allowance(
    replicas: tuple[RouterService, RouterService],
) -> None:
    first, second = replicas
    # Each call reserves its worst case, 34 input tokens (an upper bound) and 5 out (fewer when little is
    # left), and spends 11 (one output token, never more than a clamped call may report): 24 calls fit
    # 300 tokens. Alone, each replica would let 24 of its 30 through: 528 tokens in all.
    token = await register(first, maxTokens=300, maxCostMicros=1_000_000)
    answers = await asyncio.gather(
        *(send((first, second)[i % 2], "/v1/chat/completions", token, chat(max_tokens=5)) for i in range(60))
    )
    served = [a.json()["jesus"] for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert sum(r["inputTokens"] + r["outputTokens"] for r in served) <= 300
    assert sum(r["costMicros"] for r in served) <= 1_000_000
    assert {
        len([1 for i, a in enumerate(answers) if a.status_code == 200 and i % 2 == n]) > 0 for n in (0, 1)
    } == {True}, "both replicas served calls"
    assert 0 < len(served) <= 300 // 11, "no more calls than fit the allowance one by one"
    assert {a.status_code for a in refused} == {403}
    assert {a.json()["error"]["code"] for a in refused} == {"AllowanceExceeded"}
    assert all("token allowance exhausted" in a.json()["error"]["message"] for a in refused)


async def test_a_token_revoked_through_one_replica_is_refused_by_both(
    replicas: tuple[RouterService, RouterService],
) -> None:
    first, second = replicas
    token = await register(first)
    called = await send(second, "/v1/chat/completions", token, chat())  # second knows it
    assert called.status_code == 200
    revoked = await revoke(first, token)
    assert revoked.status_code == 200
    # The account is shared: what the call through the second replica spent is what the first reports.
    spent = called.json()["jesus"]
    metered = revoked.json()["metered"]
    assert (metered["tokens"], metered["costMicros"]) == (
        spent["inputTokens"] + spent["outputTokens"],
        spent["costMicros"],
    )
    assert (metered["inFlightTokens"], metered["inFlightCostMicros"]) == (0, 0)
    for service in replicas:
        answer = await send(service, "/v1/chat/completions", token, chat())
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "Unauthenticated"
        assert (await send(service, "/v1/models", token, method="GET")).status_code == 401
    # A revoked token reused: still genuine, revoked again (idempotent), still refused.
    again = await revoke(second, token)
    assert again.status_code == 200
    assert again.json()["metered"] == metered  # the same figures, however often it is asked
    assert (await send(second, "/v1/chat/completions", token, chat())).status_code == 401


async def test_an_expired_token_is_refused_by_every_replica(
    replicas: tuple[RouterService, RouterService],
) -> None:
    clock = FakeClock(now=1_700_000_000.0)
    for service in replicas:
        service.clock = clock
    token = await register(replicas[0], ttlSeconds=60)
    assert (await send(replicas[1], "/v1/chat/completions", token, chat())).status_code == 200
    clock.now += 61
    for service in replicas:
        assert (await send(service, "/v1/chat/completions", token, chat())).status_code == 401


async def test_a_stopped_redis_fails_every_endpoint_closed_with_503_and_retry_after(
    replicas: tuple[RouterService, RouterService], redis_server: RedisServer
) -> None:
    first, second = replicas
    token = await register(first)
    redis_server.stop()
    calls = [
        await send(second, "/v1/chat/completions", token, chat()),
        await send(first, "/v1/models", token, method="GET"),
        await send(first, "/admin/v1/runs", ADMIN, {"run": "r2", "routePolicy": "route"}),
        await revoke(first, token),
    ]
    for answer in calls:
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "2"
        assert answer.json()["error"]["code"] == "SharedStoreUnavailable"
        assert (
            f"the shared store redis://127.0.0.1:{redis_server.port}/0 failed on"
            in answer.json()["error"]["message"]
        )
    assert "cannot check whether the run token was revoked" in calls[0].json()["error"]["message"]
    assert "the run's account cannot be created" in calls[2].json()["error"]["message"]
    assert "the run token cannot be revoked" in calls[3].json()["error"]["message"]


async def test_redis_back_with_its_data_serves_again_and_back_empty_refuses(
    replicas: tuple[RouterService, RouterService], redis_server: RedisServer
) -> None:
    first, second = replicas
    token = await register(first)
    assert (await send(second, "/v1/chat/completions", token, chat())).status_code == 200
    redis_server.stop(keep_data=True)
    assert (await send(second, "/v1/chat/completions", token, chat())).status_code == 503
    redis_server.start()
    for service in replicas:
        answer = await send(service, "/v1/chat/completions", token, chat())
        assert answer.status_code == 200, answer.text
    # A Redis that comes back without its data has forgotten what the run spent: refused, not reset.
    redis_server.stop()
    redis_server.start()
    lost = await send(first, "/v1/chat/completions", token, chat())
    assert lost.status_code == 503
    assert lost.json()["error"]["code"] == "SharedStoreUnavailable"
    assert "is not in the shared store" in lost.json()["error"]["message"]
    assert "register the run again" in lost.json()["error"]["message"]


async def test_garbage_in_a_runs_account_is_a_503_naming_the_key(
    replicas: tuple[RouterService, RouterService], redis_server: RedisServer
) -> None:
    first, second = replicas
    token = await register(first, maxTokens=1_000)
    key = f"jesus:v1:run:{token_key(token)}"
    with redis_server.client() as client:
        client.hset(key, "spentTokens", "-1000000")  # hostile: would widen the allowance
    answer = await send(second, "/v1/chat/completions", token, chat())
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "SharedStoreUnavailable"
    message = answer.json()["error"]["message"]
    assert key in message and "field spentTokens" in message
    assert answer.json()["jesus"]["attempts"] == [], "nothing was sent"


async def test_a_revocation_marker_with_any_value_revokes(
    replicas: tuple[RouterService, RouterService], redis_server: RedisServer
) -> None:
    token = await register(replicas[0])
    with redis_server.client() as client:
        client.set(f"jesus:v1:revoked:{token_key(token)}", "\x00garbage")
    assert (await send(replicas[1], "/v1/chat/completions", token, chat())).status_code == 401


# --- --redis-url -----------------------------------------------------------------------------------


def test_without_a_url_the_store_is_this_processs_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REDIS_URL_VARIABLE, raising=False)
    assert build_store(None) is None
    service = build_service(
        load_text(to_yaml(scripted_adapter("model"), route_policy("route", ("model",)))),
        live=False,
        secrets_dir=ROUTER_SECRETS,
        admin_token=ADMIN,
        registry=CollectorRegistry(),
    )
    assert service.accounts.where == "memory"


def test_the_url_comes_from_the_environment_when_the_option_is_absent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REDIS_URL_VARIABLE, "redis://:pw@redis.jesus:6380/1")
    store = build_store(None)
    assert store is not None and store.where == "redis://redis.jesus:6380/1"
    assert build_store("redis://other:6379/0").where == "redis://other:6379/0"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "url", ["redis.jesus:6379", "http://redis:6379", "redis://:s3cret@redis:abc/0", "redis://"]
)
def test_a_malformed_url_is_a_command_error_naming_the_option_not_the_password(url: str) -> None:
    with pytest.raises(CommandError, match=rf"--redis-url \(or \${REDIS_URL_VARIABLE}\): ") as caught:
        build_store(url)
    assert "s3cret" not in str(caught.value)


async def test_a_streamed_call_is_charged_and_its_reservation_given_back_in_redis(
    replicas: tuple[RouterService, RouterService], redis_server: RedisServer
) -> None:
    first, second = replicas
    token = await register(first, maxTokens=1_000)
    answer = await send(second, "/v1/chat/completions", token, chat(stream=True))
    assert answer.status_code == 200 and answer.text.endswith("data: [DONE]\n\n")
    with redis_server.client() as client:
        held = client.hgetall(f"jesus:v1:run:{token_key(token)}")
    assert (held[b"spentTokens"], held[b"reservedTokens"], held[b"reservedCostMicros"]) == (b"11", b"0", b"0")


async def test_a_replica_that_never_routed_a_token_answers_its_spending_from_the_shared_account(
    replicas: tuple[RouterService, RouterService],
) -> None:
    first, second = replicas
    token = await register(first)
    called = await send(first, "/v1/chat/completions", token, chat())
    assert called.status_code == 200
    assert second.registry.resolve(token) is None  # the second replica has never seen the token
    revoked = await revoke(second, token)
    assert revoked.status_code == 200
    spent = called.json()["jesus"]
    assert revoked.json()["metered"]["costMicros"] == spent["costMicros"] > 0
    assert revoked.json()["metered"]["tokens"] == spent["inputTokens"] + spent["outputTokens"]


async def test_a_lost_shared_account_meters_nothing_rather_than_zero(
    replicas: tuple[RouterService, RouterService], redis_server: RedisServer
) -> None:
    # Careless: Redis lost its data (restarted without persistence) after the run's calls.
    first, second = replicas
    token = await register(first)
    assert (await send(first, "/v1/chat/completions", token, chat())).status_code == 200
    store = second.accounts
    assert isinstance(store, RedisAccountStore)
    await store.client.delete(store.account_key(token_key(token)))
    # Through the replica that routed it and through one that never did: unknown, not zero, and revoked.
    for service in (first, second):
        revoked = await revoke(service, token)
        assert revoked.status_code == 200
        assert revoked.json()["metered"] is None
    assert (await send(first, "/v1/chat/completions", token, chat())).status_code == 401
