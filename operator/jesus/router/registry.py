"""Run tokens and what they grant: each run's route plan and its account, kept by token digest.

The registry is this replica's cache of routes; whether a token is revoked is the account store's to
say (`jesus.router.accounts`), since with several replicas the revocation may have come through another.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from jesus.logic.routing import RoutePlan
from jesus.router.accounts import RunAccount, token_key


@dataclass
class RunRoute:
    """What a run token grants: the run, its route plan, and its account (allowance and spending)."""

    run: str
    namespace: str
    plan: RoutePlan
    ledger: RunAccount
    expires_at: float | None = None


@dataclass
class RunRegistry:
    """Run tokens and what they grant. Only token digests are kept, never the tokens themselves."""

    _routes: dict[str, RunRoute] = field(default_factory=dict)

    def register(self, route: RunRoute, token: str | None = None) -> str:
        """Grant `route` to a token (a new random one unless given); returns the token."""
        token = token or secrets.token_urlsafe(32)
        self._routes[token_key(token)] = route
        return token

    def resolve(self, token: str) -> RunRoute | None:
        """The run a token grants, or None."""
        return self._routes.get(token_key(token))

    def forget(self, token: str) -> RunRoute | None:
        """Forget a token's route (revoked); the route it had, or None."""
        return self._routes.pop(token_key(token), None)

    def evict_expired(self, now: float) -> int:
        """Forget the routes whose tokens have expired; how many."""
        expired = [d for d, r in self._routes.items() if r.expires_at is not None and r.expires_at <= now]
        for digest in expired:
            del self._routes[digest]
        return len(expired)

    def __len__(self) -> int:
        return len(self._routes)
