"""Runs' accounts and revoked tokens in Redis, shared by every router replica that points at it (ADR 17).

A run's account is one hash, `<prefix>run:<token key>`, of integers (what is spent and reserved, and
a `version` that every change moves) and the first overrun's text; a revocation is a key
`<prefix>revoked:<token key>`. Both live as long as the token (plus a minute for clocks that
disagree), and the account is created when the run is registered.

Admission never oversubscribes: a replica reads the account, decides with the pure
`jesus.logic.allowance.admit_to_account` (the one home of that arithmetic), and reserves with a script
that Redis runs atomically only if the account's `version` is still the one it decided on; when another
call got there first, the script answers the account as it now is and the replica decides again.

Fail closed: a store that is refused, times out (the client's socket timeout is short), holds a value no
router wrote, or has lost a run's account raises SharedStoreError, and the call is not sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from jesus.logic.allowance import (
    Allowance,
    AllowanceDecision,
    CallPrice,
    Reservation,
    Spend,
    admit_to_account,
    allowance_exceeded,
    overrun_to_note,
)
from jesus.router.accounts import RunAccount, SharedStoreError

DEFAULT_PREFIX = "jesus:v1:"
DEFAULT_TIMEOUT_SECONDS = 0.5
# Extra life of an entry past its token's expiry, so a store whose clock runs ahead keeps it long enough.
EXPIRY_GRACE_SECONDS = 60
# How often one admission may find the account changed under it before it is refused: each conflict
# means another call was admitted, so this bounds only a pathological crowd of one run's calls.
MAX_CONFLICTS = 256
URL_SCHEMES = ("redis", "rediss", "unix")

_INTEGER_FIELDS = ("version", "spentTokens", "spentCostMicros", "reservedTokens", "reservedCostMicros")
_INTEGER = re.compile(rb"0|[1-9][0-9]{0,17}")  # non-negative, far below Redis's 64-bit limit

# Reserve only if nobody changed the account since the caller read it; answer the account as it is now.
_RESERVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local version = redis.call('HGET', KEYS[1], 'version') or '0'
local verdict = 'changed'
if version == ARGV[1] then
  redis.call('HINCRBY', KEYS[1], 'reservedTokens', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'reservedCostMicros', ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'version', 1)
  verdict = 'reserved'
end
local now = redis.call('HGETALL', KEYS[1])
table.insert(now, 1, verdict)
return now
"""

# Give back the reservation of a call with nothing to charge; an account that has expired (or was lost)
# is not recreated.
_RELEASE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'reservedTokens', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'reservedCostMicros', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'version', 1)
return 1
"""

# Charge a call's usage, give its reservation back and keep the first overrun, in one step; answer the
# account as it is now.
_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
redis.call('HINCRBY', KEYS[1], 'spentTokens', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'spentCostMicros', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'reservedTokens', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'reservedCostMicros', ARGV[5])
if ARGV[3] ~= '' then redis.call('HSETNX', KEYS[1], 'overrun', ARGV[3]) end
redis.call('HINCRBY', KEYS[1], 'version', 1)
return redis.call('HGETALL', KEYS[1])
"""

# Create a registered run's account (keeping one that exists) and set its expiry.
_OPEN = """
redis.call('HSETNX', KEYS[1], 'version', '0')
if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return 1
"""


def redis_url_error(url: str) -> str | None:
    """Why `url` cannot name a Redis server, or None when it can. Never repeats a password."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in URL_SCHEMES:
        return f"the scheme must be one of {', '.join(s + '://' for s in URL_SCHEMES)}, not {parts.scheme!r}"
    if parts.scheme != "unix" and not parts.hostname:
        return "it names no host"
    if parts.scheme == "unix" and not parts.path:
        return "it names no socket path"
    return None


def redis_url_shown(url: str) -> str:
    """`url` as logs and errors show it: scheme, host, port and database, never the credentials."""
    parts = urlsplit(url)
    where = parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}{parts.path}"
    return f"{parts.scheme}://{where}"


@dataclass(frozen=True, slots=True)
class _State:
    """An account as read from Redis."""

    version: int
    spent: Spend
    reserved: Spend
    overrun: str | None


class RedisAccountStore:
    """Runs' accounts and revoked tokens in one Redis, shared by the replicas that use it."""

    def __init__(self, client: Redis, *, where: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self._where = where
        self.prefix = prefix
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)
        self._settle = client.register_script(_SETTLE)
        self._open = client.register_script(_OPEN)

    @classmethod
    def from_url(
        cls, url: str, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS, prefix: str = DEFAULT_PREFIX
    ) -> RedisAccountStore:
        """A store over the Redis at `url`; ValueError (naming no password) when the URL is not one.
        Nothing is connected until the store is first used."""
        problem = redis_url_error(url)
        if problem is not None:
            raise ValueError(problem)
        try:
            client = Redis.from_url(
                url,
                socket_timeout=timeout_seconds,
                socket_connect_timeout=timeout_seconds,
                # One immediate retry: a pooled connection that a restarted Redis closed fails once.
                retry=Retry(NoBackoff(), 1),
            )
        except ValueError as exc:
            raise ValueError(str(exc).replace(url, redis_url_shown(url))) from None
        return cls(client, where=redis_url_shown(url), prefix=prefix)

    @property
    def where(self) -> str:
        """The Redis URL without its credentials."""
        return self._where

    def account_key(self, key: str) -> str:
        """The Redis key of the account of the token with `key`."""
        return f"{self.prefix}run:{key}"

    def revoked_key(self, key: str) -> str:
        """The Redis key that marks the token with `key` revoked."""
        return f"{self.prefix}revoked:{key}"

    def account(self, key: str, run: str, allowance: Allowance) -> RunAccount:
        """The run's account in Redis (created at registration: `open`)."""
        return RedisRunAccount(self, self.account_key(key), run, allowance)

    async def open(self, key: str, *, ttl_seconds: int | None) -> None:
        """Create the run's account, living as long as its token."""
        ttl = "" if ttl_seconds is None else str(ttl_seconds + EXPIRY_GRACE_SECONDS)
        await self.run_script(self._open, self.account_key(key), ttl)

    async def revoke(self, key: str, *, ttl_seconds: int | None) -> None:
        """Mark the token revoked for every replica, until it would have expired anyway."""
        ttl = None if ttl_seconds is None else ttl_seconds + EXPIRY_GRACE_SECONDS
        redis_key = self.revoked_key(key)
        try:
            await self.client.set(redis_key, b"1", ex=ttl)
        except RedisError as exc:
            raise self.failure(redis_key, exc) from exc

    async def revoked(self, key: str) -> bool:
        """Whether any replica revoked the token (whatever the marker holds: its being there is the
        mark)."""
        redis_key = self.revoked_key(key)
        try:
            return bool(await self.client.exists(redis_key))
        except RedisError as exc:
            raise self.failure(redis_key, exc) from exc

    async def metered(self, key: str) -> tuple[Spend, Spend] | None:
        """What the run whose token has `key` spent and holds reserved; None when its account is gone
        (expired with its token, or lost); SharedStoreError when Redis cannot answer or holds garbage."""
        return await RedisRunAccount(self, self.account_key(key), "", Allowance()).metered()

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()

    async def run_script(self, script: Any, key: str, *args: str | int) -> Any:
        """Run one of the store's scripts on `key`; SharedStoreError when Redis cannot."""
        try:
            return await script(keys=[key], args=list(args))
        except RedisError as exc:
            raise self.failure(key, exc) from exc

    async def read(self, key: str) -> dict[bytes, bytes]:
        """The hash at `key` (empty when there is none); SharedStoreError when Redis cannot answer."""
        try:
            fields = await self.client.hgetall(key)
        except RedisError as exc:
            raise self.failure(key, exc) from exc
        return {_raw(k): _raw(v) for k, v in fields.items()}

    def failure(self, key: str, exc: RedisError) -> SharedStoreError:
        """The error to fail closed with: which store, which key, what went wrong."""
        return SharedStoreError(f"the shared store {self.where} failed on {key}: {type(exc).__name__}: {exc}")


class RedisRunAccount:
    """One run's account in Redis (a `RunAccount`)."""

    def __init__(self, store: RedisAccountStore, key: str, run: str, allowance: Allowance) -> None:
        self.store = store
        self.key = key
        self.run = run
        self.allowance = allowance
        # The account as Redis last answered it: the first guess of the next admission, which saves a
        # read; a stale guess costs what the read would have (the script answers the account as it is).
        self._last: _State | None = None

    async def admit(
        self, *, requested_output_tokens: int, max_input_tokens: int, price: CallPrice
    ) -> tuple[AllowanceDecision, Reservation | None]:
        """Decide on the account as Redis holds it, and reserve the worst case only if nothing changed
        it meanwhile; decide again on what changed it. A refusal is only ever decided on the account as
        Redis has just answered it, never on a remembered one."""
        state, fresh = self._last, False
        if state is None:
            state, fresh = self._state(await self.store.read(self.key)), True
        for _ in range(MAX_CONFLICTS):
            decision = admit_to_account(
                self.allowance,
                state.spent,
                state.reserved,
                state.overrun,
                requested_output_tokens=requested_output_tokens,
                max_input_tokens=max_input_tokens,
                price=price,
            )
            reservation = decision.reservation
            if reservation is None:
                if fresh:
                    return decision, None
                state, fresh = self._state(await self.store.read(self.key)), True
                continue
            answer = await self.store.run_script(
                self.store._reserve, self.key, state.version, reservation.tokens, reservation.cost_micros
            )
            verdict = _text(answer[0]) if isinstance(answer, list) and answer else ""
            # Parsed before the call goes out: garbage refuses it (its reservation, if made, stays held).
            state, fresh = self._state(_pairs(answer[1:]) if verdict else {}), True
            if verdict == "reserved":
                return decision, reservation
        raise SharedStoreError(
            f"the run's account {self.key} in {self.store.where} changed {MAX_CONFLICTS} times while one "
            "call was being admitted; the call was not sent"
        )

    async def release(self, reservation: Reservation) -> None:
        """Give the reservation back (nothing, when the account has expired with its token)."""
        await self.store.run_script(
            self.store._release, self.key, -reservation.tokens, -reservation.cost_micros
        )

    async def settle(
        self, reservation: Reservation, input_tokens: int, output_tokens: int, cost: int, *, adapter: str
    ) -> str | None:
        """Charge the call's usage, give its reservation back and note an overrun (the first one kept, by
        Redis), in one step; why the run may not go on now, or None."""
        note = overrun_to_note(
            self.allowance, None, reservation, input_tokens, output_tokens, cost, adapter=adapter
        )
        answer = await self.store.run_script(
            self.store._settle,
            self.key,
            input_tokens + output_tokens,
            cost,
            note or "",
            -reservation.tokens,
            -reservation.cost_micros,
        )
        state = self._state(_pairs(answer if isinstance(answer, list) else []))
        return allowance_exceeded(self.allowance, state.spent) or state.overrun

    async def metered(self) -> tuple[Spend, Spend] | None:
        """What the run has spent and what its calls in flight hold reserved, as Redis holds them now;
        None when the account is gone (expired with its token, or lost); SharedStoreError when Redis
        cannot answer or holds what no router wrote."""
        fields = await self.store.read(self.key)
        if not fields:
            return None
        state = self._state(fields)
        return state.spent, state.reserved

    def _state(self, fields: dict[bytes, bytes]) -> _State:
        """The account in `fields`; SharedStoreError when there is none (lost: Redis restarted without
        its data, or the run was registered before the router used Redis) or a value is garbage."""
        self._last = None
        if not fields:
            raise SharedStoreError(
                f"the run's account {self.key} is not in the shared store {self.store.where} (it was lost, "
                "or the run was registered before the router used this store): its spending is unknown, "
                "so no call is sent; register the run again"
            )
        numbers: dict[str, int] = {}
        for name in _INTEGER_FIELDS:
            raw = fields.get(name.encode(), b"0")
            if not _INTEGER.fullmatch(raw):
                raise SharedStoreError(
                    f"the run's account {self.key} in the shared store {self.store.where} holds "
                    f"{raw[:40]!r} in field {name}, not a non-negative integer: no router wrote that; "
                    "no call is sent until it is repaired or deleted"
                )
            numbers[name] = int(raw)
        overrun = fields.get(b"overrun")
        self._last = _State(
            numbers["version"],
            Spend(numbers["spentTokens"], numbers["spentCostMicros"]),
            Spend(numbers["reservedTokens"], numbers["reservedCostMicros"]),
            None if overrun is None else overrun.decode("utf-8", "replace"),
        )
        return self._last


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _raw(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _pairs(flat: list[Any]) -> dict[bytes, bytes]:
    """A flat HGETALL answer from a script ([field, value, ...]) as a dict."""
    items = [_raw(v) for v in flat]
    return dict(zip(items[::2], items[1::2], strict=False))
