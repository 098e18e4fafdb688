"""Runs' accounts and revocations in a real Redis (`redis-server`, started per test): the store decides
as the pure allowance logic does, never oversubscribes an allowance under concurrent calls from several
replicas, shares revocations, and fails closed (naming the key) when Redis is down, hung, lost its data,
or holds values no router wrote."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.builders.allowance_cases import CASES, PRICE
from tests.builders.chat import reply, request
from tests.builders.doubles import FakeAdapter
from tests.builders.redis_server import RedisServer

from jesus.logic.allowance import (
    Allowance,
    AllowanceDecision,
    CallPrice,
    Reservation,
    Spend,
    admit_to_account,
)
from jesus.logic.routing import RoutePlan
from jesus.router import RoutedAdapter, RouteError, Router
from jesus.router.accounts import SharedStoreError, token_key
from jesus.router.redis_store import (
    EXPIRY_GRACE_SECONDS,
    RedisAccountStore,
    redis_url_error,
    redis_url_shown,
)
from jesus_adapters.errors import ERROR_TABLE, RouteErrorKind

KEY = token_key("jr2.some.token")


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisAccountStore]:
    shared = RedisAccountStore.from_url(redis_server.url)
    yield shared
    await shared.aclose()


def stored(redis_server: RedisServer, key: str) -> dict[str, str]:
    with redis_server.client() as client:
        return {k.decode(): v.decode() for k, v in client.hgetall(key).items()}


@pytest.mark.parametrize(("allowance", "spent", "reserved", "overrun", "output", "max_input", "price"), CASES)
async def test_the_store_decides_as_the_pure_function_on_a_table_of_cases(
    store: RedisAccountStore,
    redis_server: RedisServer,
    allowance: Allowance,
    spent: Spend,
    reserved: Spend,
    overrun: str | None,
    output: int,
    max_input: int,
    price: CallPrice,
) -> None:
    key = store.account_key(KEY)
    fields = {
        "version": "7",
        "spentTokens": str(spent.tokens),
        "spentCostMicros": str(spent.cost_micros),
        "reservedTokens": str(reserved.tokens),
        "reservedCostMicros": str(reserved.cost_micros),
    }
    if overrun is not None:
        fields["overrun"] = overrun
    with redis_server.client() as client:
        client.hset(key, mapping=fields)
    expected = admit_to_account(
        allowance,
        spent,
        reserved,
        overrun,
        requested_output_tokens=output,
        max_input_tokens=max_input,
        price=price,
    )
    account = store.account(KEY, "run", allowance)
    decision, reservation = await account.admit(
        requested_output_tokens=output, max_input_tokens=max_input, price=price
    )
    assert decision == expected
    assert reservation == expected.reservation
    held = stored(redis_server, key)
    taken = reservation or Reservation(0, 0, 0)
    assert int(held["reservedTokens"]) == reserved.tokens + taken.tokens
    assert int(held["reservedCostMicros"]) == reserved.cost_micros + taken.cost_micros
    assert int(held["spentTokens"]) == spent.tokens, "admission reserves, it never spends"


money = st.integers(min_value=0, max_value=10**13)
counts = st.integers(min_value=0, max_value=10**9)


@settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    allowance=st.builds(Allowance, st.none() | counts, st.none() | money),
    spent=st.builds(Spend, counts, money),
    reserved=st.builds(Spend, counts, money),
    output=st.integers(min_value=1, max_value=10**7),
    max_input=st.integers(min_value=0, max_value=10**7),
    price=st.builds(CallPrice, st.integers(0, 10**9), st.integers(0, 10**9)),
)
def test_the_store_and_the_pure_function_agree_on_any_account(
    redis_server: RedisServer,
    allowance: Allowance,
    spent: Spend,
    reserved: Spend,
    output: int,
    max_input: int,
    price: CallPrice,
) -> None:
    async def decided() -> tuple[AllowanceDecision, dict[str, str]]:
        shared = RedisAccountStore.from_url(redis_server.url)
        key = shared.account_key(KEY)
        with redis_server.client() as client:
            client.delete(key)
            client.hset(
                key,
                mapping={
                    "version": 3,
                    "spentTokens": spent.tokens,
                    "spentCostMicros": spent.cost_micros,
                    "reservedTokens": reserved.tokens,
                    "reservedCostMicros": reserved.cost_micros,
                },
            )
        try:
            decision, _ = await shared.account(KEY, "run", allowance).admit(
                requested_output_tokens=output, max_input_tokens=max_input, price=price
            )
        finally:
            await shared.aclose()
        return decision, stored(redis_server, key)

    decision, held = asyncio.run(decided())
    expected = admit_to_account(
        allowance,
        spent,
        reserved,
        None,
        requested_output_tokens=output,
        max_input_tokens=max_input,
        price=price,
    )
    assert decision == expected
    taken = expected.reservation or Reservation(0, 0, 0)
    assert (int(held["reservedTokens"]), int(held["reservedCostMicros"])) == (
        reserved.tokens + taken.tokens,
        reserved.cost_micros + taken.cost_micros,
    )


async def test_settle_charges_and_gives_back_at_once_and_the_first_overrun_is_kept(
    store: RedisAccountStore, redis_server: RedisServer
) -> None:
    await store.open(KEY, ttl_seconds=3600)
    account = store.account(KEY, "run", Allowance(max_tokens=10_000))
    decision, reservation = await account.admit(requested_output_tokens=100, max_input_tokens=50, price=PRICE)
    assert decision.allowed and reservation is not None
    assert await account.settle(reservation, 40, 90, 1_500, adapter="team/a") is None  # gives it back too
    held = stored(redis_server, store.account_key(KEY))
    assert (held["spentTokens"], held["spentCostMicros"]) == ("130", "1500")
    assert (held["reservedTokens"], held["reservedCostMicros"]) == ("0", "0")

    _, second = await account.admit(requested_output_tokens=100, max_input_tokens=50, price=PRICE)
    assert second is not None
    stop = await account.settle(second, 60, 500, 9, adapter="team/a")  # 500 output tokens: beyond 100
    assert (
        stop is not None and "model adapter team/a reported more than the call's reserved worst case" in stop
    )
    _, third = await account.admit(requested_output_tokens=1, max_input_tokens=1, price=PRICE)
    assert third is None
    # A later overrun (of a call that reserved nothing: the sums stay whole) does not replace the first.
    assert await account.settle(Reservation(0, 0, 0), 1, 999, 9, adapter="team/b") == stop
    refused, _ = await account.admit(requested_output_tokens=1, max_input_tokens=1, price=PRICE)
    assert refused.reason == f"further calls refused: {stop}"


async def test_a_remembered_account_never_refuses_a_call_that_fits_now(
    store: RedisAccountStore, redis_server: RedisServer
) -> None:
    await store.open(KEY, ttl_seconds=60)
    here = store.account(KEY, "run", Allowance(max_tokens=100))
    there = store.account(KEY, "run", Allowance(max_tokens=100))  # another replica
    _, big = await here.admit(requested_output_tokens=80, max_input_tokens=10, price=CallPrice())
    assert big is not None and big.tokens == 90
    await there.settle(big, 5, 5, 0, adapter="a")  # the big call ended elsewhere, using little
    # `here` remembers 90 reserved, which leaves no room for 50; Redis says 10 spent, which does.
    decision, second = await here.admit(requested_output_tokens=40, max_input_tokens=10, price=CallPrice())
    assert decision.allowed and second is not None
    await here.release(second)  # a call with nothing to charge
    held = stored(redis_server, store.account_key(KEY))
    assert (held["spentTokens"], held["reservedTokens"]) == ("10", "0")


async def test_settle_says_when_the_allowance_is_exceeded(store: RedisAccountStore) -> None:
    await store.open(KEY, ttl_seconds=60)
    account = store.account(KEY, "run", Allowance(max_tokens=100))
    _, reservation = await account.admit(requested_output_tokens=10, max_input_tokens=10, price=CallPrice())
    assert reservation is not None
    assert await account.settle(reservation, 10, 10, 0, adapter="a") is None
    # Another replica's spending, which this one never saw, counts too.
    other = store.account(KEY, "run", Allowance(max_tokens=100))
    stop = await other.settle(Reservation(0, 0, 0), 50, 40, 0, adapter="a")
    assert stop == "token allowance exceeded: 110 of 100 tokens spent"


async def test_concurrent_calls_from_two_replicas_never_oversubscribe(redis_server: RedisServer) -> None:
    first, second = RedisAccountStore.from_url(redis_server.url), RedisAccountStore.from_url(redis_server.url)
    allowance = Allowance(max_tokens=1_000, max_cost_micros=1_000_000)
    await first.open(KEY, ttl_seconds=60)
    accounts = [s.account(KEY, "run", allowance) for s in (first, second)]

    async def one(index: int) -> Reservation | None:
        _, reservation = await accounts[index % 2].admit(
            requested_output_tokens=30, max_input_tokens=20, price=PRICE
        )
        return reservation

    reservations = await asyncio.gather(*(one(i) for i in range(200)))
    taken = [r for r in reservations if r is not None]
    assert sum(r.tokens for r in taken) <= allowance.max_tokens  # type: ignore[operator]
    assert len(taken) == 1_000 // 50, "every call that fits is admitted, and no more"
    held = stored(redis_server, first.account_key(KEY))
    assert int(held["reservedTokens"]) == sum(r.tokens for r in taken)
    assert int(held["version"]) == len(taken)
    await first.aclose()
    await second.aclose()


async def test_a_revocation_reaches_every_replica_and_expires_with_the_token(
    redis_server: RedisServer,
) -> None:
    first, second = RedisAccountStore.from_url(redis_server.url), RedisAccountStore.from_url(redis_server.url)
    assert not await second.revoked(KEY)
    await first.revoke(KEY, ttl_seconds=300)
    assert await second.revoked(KEY)
    assert not await second.revoked(token_key("another"))
    with redis_server.client() as client:
        assert 300 < client.ttl(first.revoked_key(KEY)) <= 300 + EXPIRY_GRACE_SECONDS
    await first.aclose()
    await second.aclose()


async def test_an_account_lives_as_long_as_its_token(
    store: RedisAccountStore, redis_server: RedisServer
) -> None:
    await store.open(KEY, ttl_seconds=120)
    with redis_server.client() as client:
        assert 120 < client.ttl(store.account_key(KEY)) <= 120 + EXPIRY_GRACE_SECONDS
    # Registering again (another replica, a retry) keeps what was spent.
    account = store.account(KEY, "run", Allowance())
    _, reservation = await account.admit(requested_output_tokens=1, max_input_tokens=1, price=PRICE)
    assert reservation is not None
    await account.settle(reservation, 1, 1, 1, adapter="a")
    await store.open(KEY, ttl_seconds=120)
    assert stored(redis_server, store.account_key(KEY))["spentTokens"] == "2"


# --- failing closed --------------------------------------------------------------------------------


async def test_a_lost_account_is_refused_not_started_again_from_zero(store: RedisAccountStore) -> None:
    account = store.account(KEY, "run", Allowance(max_tokens=100))
    with pytest.raises(SharedStoreError, match=rf"account jesus:v1:run:{KEY} is not in the shared store"):
        await account.admit(requested_output_tokens=1, max_input_tokens=1, price=PRICE)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("spentTokens", "lots"),  # careless: text
        ("reservedCostMicros", "-5"),  # hostile: a negative reservation would widen the allowance
        ("spentCostMicros", "1e3"),
        ("version", "99999999999999999999999"),  # past 64 bits
        ("reservedTokens", ""),
        ("spentTokens", "\x00\xff"),
    ],
)
async def test_garbage_in_an_account_fails_closed_naming_the_key_and_field(
    store: RedisAccountStore, redis_server: RedisServer, field: str, value: str
) -> None:
    await store.open(KEY, ttl_seconds=60)
    with redis_server.client() as client:
        client.hset(store.account_key(KEY), field, value)
    account = store.account(KEY, "run", Allowance(max_tokens=100))
    with pytest.raises(SharedStoreError) as caught:
        await account.admit(requested_output_tokens=1, max_input_tokens=1, price=PRICE)
    assert store.account_key(KEY) in str(caught.value)
    assert f"in field {field}, not a non-negative integer" in str(caught.value)


async def test_a_key_of_another_type_fails_closed_naming_it(
    store: RedisAccountStore, redis_server: RedisServer
) -> None:
    with redis_server.client() as client:
        client.set(store.account_key(KEY), "not a hash")
    account = store.account(KEY, "run", Allowance())
    with pytest.raises(SharedStoreError, match=rf"failed on jesus:v1:run:{KEY}: ResponseError: WRONGTYPE"):
        await account.admit(requested_output_tokens=1, max_input_tokens=1, price=PRICE)


async def test_a_stopped_redis_refuses_quickly(store: RedisAccountStore, redis_server: RedisServer) -> None:
    await store.open(KEY, ttl_seconds=60)
    redis_server.stop()
    account = store.account(KEY, "run", Allowance())
    started = time.monotonic()
    with pytest.raises(SharedStoreError, match=r"the shared store redis://127\.0\.0\.1:\d+/0 failed on"):
        await account.admit(requested_output_tokens=1, max_input_tokens=1, price=PRICE)
    with pytest.raises(SharedStoreError, match="ConnectionError"):
        await store.revoked(KEY)
    assert time.monotonic() - started < 5


async def test_a_hung_redis_times_out_and_refuses(
    store: RedisAccountStore, redis_server: RedisServer
) -> None:
    await store.open(KEY, ttl_seconds=60)
    redis_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(SharedStoreError, match="TimeoutError"):
            await store.revoked(KEY)
        assert time.monotonic() - started < 3, "the socket timeout is short"
    finally:
        redis_server.resume()


async def test_the_router_sends_no_call_without_a_reservation(
    store: RedisAccountStore, redis_server: RedisServer
) -> None:
    adapter = FakeAdapter([reply()])
    router = Router({"a": RoutedAdapter("a", adapter, PRICE)})
    plan = RoutePlan(chain=("a",))
    await store.open(KEY, ttl_seconds=60)
    account = store.account(KEY, "run", Allowance(max_tokens=10_000))
    answered = await router.complete(plan, request(), account)
    assert answered.record.input_tokens == 10
    redis_server.stop()
    with pytest.raises(RouteError) as caught:
        await router.complete(plan, request(), account)
    assert caught.value.kind == RouteErrorKind.SHARED_STORE_UNAVAILABLE
    assert caught.value.reason.startswith("the run's allowance cannot be checked, so the call was not sent")
    assert caught.value.retry_after_seconds is not None and caught.value.retry_after_seconds > 0
    assert caught.value.record.outcome == "SharedStoreUnavailable"
    assert len(adapter.received) == 1, "the second call was never sent"
    assert ERROR_TABLE[caught.value.kind].http_status == 503


async def test_a_call_whose_usage_cannot_be_booked_keeps_its_reservation(
    store: RedisAccountStore, redis_server: RedisServer
) -> None:
    class StopsRedis(FakeAdapter):
        async def complete(self, request: object, *, timeout_seconds: float) -> object:  # type: ignore[override]
            redis_server.pause()  # the answer is on its way; the store hangs meanwhile
            return await super().complete(request, timeout_seconds=timeout_seconds)  # type: ignore[arg-type]

    router = Router({"a": RoutedAdapter("a", StopsRedis([reply()]), PRICE)})
    await store.open(KEY, ttl_seconds=60)
    account = store.account(KEY, "run", Allowance(max_tokens=10_000))
    try:
        answered = await router.complete(RoutePlan(chain=("a",)), request(max_tokens=100), account)
    finally:
        redis_server.resume()
    assert answered.response.content == "hello there", "the answer is paid for, so it is delivered"
    assert "its worst case stays reserved" in (answered.record.error or "")
    held = stored(redis_server, store.account_key(KEY))
    # The worst case stands in for the usage it could not charge (a charge Redis still ran once it woke,
    # the client having given up on it, counts as well: every doubt errs toward holding more).
    assert int(held["reservedTokens"]) >= 15


# --- URLs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("localhost:6379", "the scheme must be one of"),
        ("http://redis:6379", "not 'http'"),
        ("redis://:pa55w0rd@redis:port/0", "not a URL"),
        ("redis://", "it names no host"),
        ("unix://", "it names no socket path"),
        ("", "the scheme must be one of"),
    ],
)
def test_a_malformed_url_says_why_and_never_shows_a_password(url: str, problem: str) -> None:
    error = redis_url_error(url)
    assert error is not None and problem in error
    assert "pa55w0rd" not in error
    with pytest.raises(ValueError, match=problem):
        RedisAccountStore.from_url(url)


def test_a_url_is_shown_without_its_credentials() -> None:
    assert redis_url_shown("redis://user:pa55w0rd@redis.jesus:6380/2") == "redis://redis.jesus:6380/2"
    assert redis_url_shown("rediss://redis") == "rediss://redis:6379"
    assert redis_url_error("rediss://user:pw@redis:6380/1") is None
