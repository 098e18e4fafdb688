"""Signed run tokens: what a run may do, carried by its token and checked without shared state.

Every router replica derives the same signing key from the admin token, so a token the operator got
from one replica works on every other one and survives a router restart. The token says which run,
which RoutePolicy, which data classification, what allowance and until when; it holds no credential.
Format: `jr1.<base64url JSON grant>.<base64url HMAC-SHA256>`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
from dataclasses import dataclass

PREFIX = "jr1"
# Far above any token `sign` makes (about 400 characters); anything longer is refused unread.
MAX_TOKEN_LENGTH = 4096
_KEY_CONTEXT = b"jesus.dev/run-token/v1\0"


@dataclass(frozen=True, slots=True)
class RunGrant:
    """What one run token grants. Times are Unix seconds; money is micro-units."""

    run: str
    namespace: str
    route_policy: str
    classification: str
    max_tokens: int | None
    max_cost_micros: int | None
    expires_at: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and verifies run tokens with a key derived from a shared secret (the admin token)."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(_KEY_CONTEXT + secret.encode("utf-8")).digest()

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def sign(self, grant: RunGrant) -> str:
        """The token for `grant`."""
        payload = _b64(json.dumps(dataclasses.asdict(grant), sort_keys=True, separators=(",", ":")).encode())
        return f"{PREFIX}.{payload}.{self._mac(payload)}"

    def verify(self, token: str, now: float) -> RunGrant | None:
        """The grant of a genuine, unexpired token; None for anything else (any text may be given)."""
        if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            return None
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        payload, mac = parts[1], parts[2]
        if not hmac.compare_digest(mac.encode("ascii"), self._mac(payload).encode("ascii")):
            return None
        try:
            fields = json.loads(_unb64(payload))
            grant = RunGrant(**fields)
        except (binascii.Error, ValueError, TypeError):
            return None
        if grant.expires_at <= now:
            return None
        return grant
