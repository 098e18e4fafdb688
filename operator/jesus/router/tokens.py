"""Signed run tokens: what a run may do, carried by its token and checked without shared state.

Every router replica derives the same signing key from the secret only routers hold
($JESUS_ROUTER_SIGNING_KEY; in local mode the static admin token), so a token the operator got from
one replica works on every other one and survives a router restart. The token says which run,
which RoutePolicy, which data classification, what allowance and until when, and pins the route plan
resolved at registration: the chain, each adapter's prices and the retry and failover rules (ADR 16).
It holds no credential.

Format: `jr2.<base64url zlib(JSON grant)>.<base64url HMAC-SHA256>`. Tokens of the first format,
`jr1.<base64url JSON grant>.<mac>`, carry no plan and are still accepted until they expire: their
route is resolved from the RoutePolicy, as it was when they were issued.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import zlib
from dataclasses import dataclass
from typing import Any

from jesus.logic.allowance import CallPrice
from jesus.logic.routing import RetryPolicy, RoutePlan

PREFIX = "jr2"
LEGACY_PREFIX = "jr1"  # no pinned plan
# Far above any token `sign` makes for a real route (about 600 characters for five adapters);
# anything longer is refused unread, and `sign` refuses to make one.
MAX_TOKEN_LENGTH = 4096
_KEY_CONTEXT = b"jesus.dev/run-token/v1\0"


class TokenTooLongError(ValueError):
    """The grant does not fit a bearer token (a route of many adapters with very long names)."""


@dataclass(frozen=True, slots=True)
class RunGrant:
    """What one run token grants. Times are Unix seconds; money is micro-units. `plan` is the route
    pinned at registration; None only in tokens of the first format."""

    run: str
    namespace: str
    route_policy: str
    classification: str
    max_tokens: int | None
    max_cost_micros: int | None
    expires_at: int
    nonce: str
    plan: RoutePlan | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def plan_to_json(plan: RoutePlan) -> dict[str, Any]:
    """A pinned plan as the token carries it: `chain` is [adapter, input price, output price] rows."""
    missing = [name for name in plan.chain if name not in plan.prices]
    if missing:
        raise ValueError(f"only a plan with pinned prices can be signed; none for {missing}")
    retry = plan.retry
    return {
        "chain": [
            [name, plan.prices[name].input_micros_per_mtok, plan.prices[name].output_micros_per_mtok]
            for name in plan.chain
        ],
        "failoverOn": sorted(plan.failover_on),
        "attemptTimeout": plan.attempt_timeout_seconds,
        "retry": [retry.max_retries, retry.backoff_base_seconds, retry.backoff_max_seconds, retry.multiplier],
        "deadline": plan.failover_deadline_seconds,
    }


def plan_from_json(fields: dict[str, Any]) -> RoutePlan:
    """The plan `plan_to_json` wrote; KeyError, TypeError or ValueError for anything else."""
    chain = [(str(name), CallPrice(int(given), int(taken))) for name, given, taken in fields["chain"]]
    retries, base, ceiling, multiplier = fields["retry"]
    deadline = fields["deadline"]
    return RoutePlan(
        chain=tuple(name for name, _ in chain),
        failover_on=frozenset(str(kind) for kind in fields["failoverOn"]),
        attempt_timeout_seconds=float(fields["attemptTimeout"]),
        retry=RetryPolicy(int(retries), float(base), float(ceiling), float(multiplier)),
        failover_deadline_seconds=None if deadline is None else float(deadline),
        prices=dict(chain),
    )


class TokenSigner:
    """Signs and verifies run tokens with a key derived from a secret the router replicas share."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(_KEY_CONTEXT + secret.encode("utf-8")).digest()

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def sign(self, grant: RunGrant) -> str:
        """The token for `grant`, whose plan must be pinned (prices for every adapter); TokenTooLongError
        when it would not fit a bearer header."""
        if grant.plan is None:
            raise ValueError("only a grant with a pinned plan can be signed")
        fields = {f.name: getattr(grant, f.name) for f in dataclasses.fields(grant)}
        fields["plan"] = plan_to_json(grant.plan)
        text = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        payload = _b64(zlib.compress(text, 9))
        token = f"{PREFIX}.{payload}.{self._mac(payload)}"
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenTooLongError(
                f"the run's route does not fit a token ({len(token)} > {MAX_TOKEN_LENGTH} characters): "
                "shorten the chain or its adapters' names"
            )
        return token

    def verify(self, token: str, now: float) -> RunGrant | None:
        """The grant of a genuine, unexpired token; None for anything else (any text may be given)."""
        if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            return None
        parts = token.split(".")
        if len(parts) != 3 or parts[0] not in (PREFIX, LEGACY_PREFIX):
            return None
        payload, mac = parts[1], parts[2]
        if not hmac.compare_digest(mac.encode("ascii"), self._mac(payload).encode("ascii")):
            return None
        try:
            # Only a payload this key signed gets here, so decompressing it is safe.
            raw = _unb64(payload)
            fields = json.loads(zlib.decompress(raw) if parts[0] == PREFIX else raw)
            plan = fields.pop("plan", None) if parts[0] == PREFIX else None
            grant = RunGrant(**fields, plan=None if plan is None else plan_from_json(plan))
        except (binascii.Error, zlib.error, ValueError, TypeError, KeyError):
            return None
        if grant.expires_at <= now:
            return None
        return grant
