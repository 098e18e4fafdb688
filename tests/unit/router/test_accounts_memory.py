"""The default store of runs' accounts and revocations, in this process's memory: the behaviour of one
replica, as before the store existed. The ledger decides as the pure allowance logic does (the same
table the Redis store is held to), keeps sums and no call records, and revocations are remembered until
their tokens would have expired."""

from __future__ import annotations

import pytest
from tests.builders.allowance_cases import CASES
from tests.builders.doubles import FakeClock

from jesus.logic.allowance import Allowance, CallPrice, Spend, admit_to_account
from jesus.router.accounts import MemoryAccountStore, seconds_left, token_key
from jesus.router.ledger import RunLedger


@pytest.mark.parametrize(("allowance", "spent", "reserved", "overrun", "output", "max_input", "price"), CASES)
async def test_the_ledger_decides_as_the_pure_function_on_the_same_table(
    allowance: Allowance,
    spent: Spend,
    reserved: Spend,
    overrun: str | None,
    output: int,
    max_input: int,
    price: CallPrice,
) -> None:
    ledger = RunLedger("run", allowance, spent=spent, reserved=reserved, overrun=overrun)
    expected = admit_to_account(
        allowance,
        spent,
        reserved,
        overrun,
        requested_output_tokens=output,
        max_input_tokens=max_input,
        price=price,
    )
    decision, reservation = await ledger.admit(
        requested_output_tokens=output, max_input_tokens=max_input, price=price
    )
    assert (decision, reservation) == (expected, expected.reservation)
    taken = reservation.tokens if reservation else 0
    assert ledger.reserved.tokens == reserved.tokens + taken


async def test_settle_charges_and_says_when_the_run_must_stop() -> None:
    ledger = RunLedger("run", Allowance(max_tokens=100))
    _, reservation = await ledger.admit(requested_output_tokens=10, max_input_tokens=10, price=CallPrice())
    assert reservation is not None
    assert await ledger.settle(reservation, 10, 10, 0, adapter="a") is None
    assert (ledger.spent, ledger.reserved) == (Spend(20, 0), Spend(0, 0)), "charged and given back at once"
    _, second = await ledger.admit(requested_output_tokens=10, max_input_tokens=10, price=CallPrice())
    assert second is not None
    await ledger.release(second)  # a call with nothing to charge
    assert ledger.reserved == Spend(0, 0)
    stop = await ledger.settle(reservation, 10, 500, 0, adapter="a")
    assert stop == ledger.exceeded() and stop is not None and stop.startswith("token allowance exceeded")


async def test_the_memory_store_hands_out_fresh_ledgers_and_forgets_expired_revocations() -> None:
    clock = FakeClock(now=5_000.0)
    store = MemoryAccountStore(clock)
    assert store.where == "memory"
    account = store.account(token_key("t"), "run", Allowance(max_tokens=7))
    assert isinstance(account, RunLedger) and account.allowance == Allowance(max_tokens=7)
    await store.open(token_key("t"), ttl_seconds=60)  # nothing to create: the route holds the ledger
    await store.revoke(token_key("old"), ttl_seconds=10)
    await store.revoke(token_key("forever"), ttl_seconds=None)
    assert await store.revoked(token_key("old")) and not await store.revoked(token_key("t"))
    clock.now += 11
    await store.revoke(token_key("new"), ttl_seconds=10)  # each revocation prunes the expired ones
    assert not await store.revoked(token_key("old"))
    assert await store.revoked(token_key("forever")) and await store.revoked(token_key("new"))


def test_entries_live_whole_seconds_until_their_token_expires() -> None:
    assert seconds_left(None, 100.0) is None
    assert seconds_left(160.5, 100.0) == 61
    assert seconds_left(90.0, 100.0) == 1, "an entry for an expired token still lives a second"
    assert token_key("jr2.a.b") != token_key("jr2.a.c") and len(token_key("x")) == 64
