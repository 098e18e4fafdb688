"""Where runs' accounts and revoked tokens live: the interface every store offers, and the default
store in this process's memory.

A run's account (its allowance, spending and reservations) and the list of revoked tokens are keyed by
the token's digest (`token_key`). One router replica keeps them in memory (`MemoryAccountStore`, the
default); replicas behind one address share them in Redis (`jesus.router.redis_store`, ADR 17), so a
run cannot spend its allowance once per replica and a token revoked through one is refused by all.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from jesus.logic.allowance import Allowance, AllowanceDecision, CallPrice, Reservation, Spend
from jesus.router.ledger import RunLedger

# What the runner is told to wait before calling again when the shared store cannot answer.
STORE_RETRY_AFTER_SECONDS = 2.0


class SharedStoreError(Exception):
    """The shared store could not answer (refused, timed out) or held what no router wrote there; the
    message names the store and, where there is one, the key. A call that meets it is not sent."""


def token_key(token: str) -> str:
    """The digest a token is known by: in the registry, in accounts and in the revoked list. Tokens
    themselves are never kept."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def seconds_left(expires_at: float | None, now: float) -> int | None:
    """Whole seconds until `expires_at` (at least 1), or None for no expiry: what a stored entry
    lives for. Relative, so the store's clock never has to agree with the router's."""
    return None if expires_at is None else max(1, math.ceil(expires_at - now))


class RunAccount(Protocol):
    """One run's allowance and spending, wherever they are kept. Every method may raise
    SharedStoreError."""

    run: str
    allowance: Allowance

    async def admit(
        self, *, requested_output_tokens: int, max_input_tokens: int, price: CallPrice
    ) -> tuple[AllowanceDecision, Reservation | None]:
        """Decide whether a call fits what is neither spent nor reserved; when it does, reserve its
        worst case, atomically for every replica that shares the account."""
        ...

    async def release(self, reservation: Reservation) -> None:
        """Give back the reservation of a call that ended with nothing to charge."""
        ...

    async def settle(
        self, reservation: Reservation, input_tokens: int, output_tokens: int, cost: int, *, adapter: str
    ) -> str | None:
        """Charge what a call reported and give its reservation back, in one step (atomically in a shared
        store), noting an overrun of the reservation; why the run may not go on now, or None."""
        ...

    async def metered(self) -> tuple[Spend, Spend] | None:
        """What the run has spent and what its calls in flight hold reserved; None when the account is
        gone (a shared store that lost it)."""
        ...


class AccountStore(Protocol):
    """Runs' accounts and revoked tokens, by token key. Every coroutine may raise SharedStoreError."""

    @property
    def where(self) -> str:
        """Where the store keeps them, for log lines and errors (never a password)."""
        ...

    def account(self, key: str, run: str, allowance: Allowance) -> RunAccount:
        """The account of the run whose token has `key` (no I/O: the account is reached when used)."""
        ...

    async def open(self, key: str, *, ttl_seconds: int | None) -> None:
        """Create a newly registered run's account, living as long as its token."""
        ...

    async def revoke(self, key: str, *, ttl_seconds: int | None) -> None:
        """Refuse the token with `key` from now on (until it would have expired anyway)."""
        ...

    async def revoked(self, key: str) -> bool:
        """Whether the token with `key` was revoked."""
        ...

    async def metered(self, key: str) -> tuple[Spend, Spend] | None:
        """What the run whose token has `key` spent and holds reserved, when the store keeps accounts
        apart from this replica's routes (a shared store); None when it does not know."""
        ...

    async def aclose(self) -> None:
        """Close connections."""
        ...


@dataclass
class MemoryAccountStore:
    """Accounts and revocations in this process's memory: one replica's, lost when it restarts.

    Accounts are the registry's routes' ledgers (forgotten with them); a revocation is kept until the
    token would have expired (`clock` is the router's).
    """

    clock: Callable[[], float]
    _revoked: dict[str, float | None] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """Always this process's memory."""
        return "memory"

    def account(self, key: str, run: str, allowance: Allowance) -> RunAccount:
        """A fresh account: this replica has not seen the run before."""
        return RunLedger(run, allowance)

    async def open(self, key: str, *, ttl_seconds: int | None) -> None:
        """Nothing to create: the account lives with the route in the registry."""

    async def revoke(self, key: str, *, ttl_seconds: int | None) -> None:
        """Remember the revocation until the token would have expired; forget the expired ones."""
        now = self.clock()
        self._revoked = {k: until for k, until in self._revoked.items() if until is None or until > now}
        self._revoked[key] = None if ttl_seconds is None else now + ttl_seconds

    async def revoked(self, key: str) -> bool:
        """Whether the token was revoked here."""
        return key in self._revoked

    async def metered(self, key: str) -> tuple[Spend, Spend] | None:
        """Unknown: this store's accounts live with the routes of the registry."""
        return None

    async def aclose(self) -> None:
        """Nothing to close."""
