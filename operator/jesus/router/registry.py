"""Run tokens and what they grant: each run's route plan and its ledger, kept by token digest."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from jesus.logic.routing import RoutePlan
from jesus.router.ledger import RunLedger


@dataclass
class RunRoute:
    """What a run token grants: the run, its route plan, and its ledger (allowance and spending)."""

    run: str
    namespace: str
    plan: RoutePlan
    ledger: RunLedger
    expires_at: float | None = None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class RunRegistry:
    """Run tokens and what they grant. Only token digests are kept, never the tokens themselves."""

    _routes: dict[str, RunRoute] = field(default_factory=dict)
    _revoked: set[str] = field(default_factory=set)

    def register(self, route: RunRoute, token: str | None = None) -> str:
        """Grant `route` to a token (a new random one unless given); returns the token."""
        token = token or secrets.token_urlsafe(32)
        self._routes[_digest(token)] = route
        return token

    def resolve(self, token: str) -> RunRoute | None:
        """The run a token grants, or None."""
        return self._routes.get(_digest(token))

    def revoke(self, token: str) -> bool:
        """Forget a token and refuse it from now on; whether it was known."""
        self._revoked.add(_digest(token))
        return self._routes.pop(_digest(token), None) is not None

    def evict_expired(self, now: float) -> int:
        """Forget the routes whose tokens have expired; how many."""
        expired = [d for d, r in self._routes.items() if r.expires_at is not None and r.expires_at <= now]
        for digest in expired:
            del self._routes[digest]
        return len(expired)

    def revoked(self, token: str) -> bool:
        """Whether the token was revoked here."""
        return _digest(token) in self._revoked

    def __len__(self) -> int:
        return len(self._routes)
