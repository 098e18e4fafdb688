"""Who may call the router's admin API (run registration and revocation).

In a cluster, only the operator: it presents its service-account token (projected for the router's
audience), and the router asks the API server who that is with a TokenReview. The answer is kept
briefly (`cache_seconds`, on an injected clock), so a burst of registrations costs one review. Any
failure refuses: no header, another scheme, a header too long to be a token, a token the API server
does not authenticate (expired, garbage, another audience), the token of another identity, and an API
server that cannot be asked (503, fail closed).

Without a cluster (`jesus run`, tests, a router serving spec files) a static token shared by the two
processes guards it instead (`StaticTokenAuthenticator`); see docs/router.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from jesus.router.http import same_token

# A service-account token is a JWT of about 1 KiB; a header longer than this is refused unread (no
# review is asked for it, nothing of it is hashed or cached).
MAX_ADMIN_HEADER_BYTES = 8192
DEFAULT_CACHE_SECONDS = 10.0
DEFAULT_MAX_CACHED = 256
DEFAULT_REVIEW_TIMEOUT_SECONDS = 5.0
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
_PRINTABLE = re.compile(r"[!-~]+")
_ACCOUNT_PART = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class AdminDecision:
    """Whether a caller may use the admin API: HTTP `status` 200 when it may, else 401 (not
    authenticated), 403 (authenticated, not the operator) or 503 (the API server could not be asked),
    and `reason` for the response and the log."""

    status: int
    reason: str
    who: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200

    @property
    def kind(self) -> str:
        """The error code of a refusal, in the router's error body."""
        return {401: "Unauthenticated", 403: "Forbidden"}.get(self.status, "AuthenticationUnavailable")


class AdminAuthenticator(Protocol):
    """Decides on the `Authorization` header of an admin request."""

    where: str
    """How callers are checked, for the start-up log line."""

    async def authenticate(self, header: str | None) -> AdminDecision: ...


def bearer_token(header: str | None) -> str | AdminDecision:
    """The token of an `Authorization: Bearer <token>` header, or the 401 that refuses it."""
    if header is None or not header.strip():
        return AdminDecision(401, "the admin API needs an Authorization: Bearer <token> header")
    if len(header) > MAX_ADMIN_HEADER_BYTES:
        return AdminDecision(
            401, f"the Authorization header is longer than {MAX_ADMIN_HEADER_BYTES} bytes: not a token"
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return AdminDecision(401, f"the Authorization header's scheme must be Bearer, not {scheme[:20]!r}")
    token = token.strip()
    if not _PRINTABLE.fullmatch(token):
        return AdminDecision(401, "the bearer token is empty or not printable ASCII")
    return token


def parse_service_account(text: str, *, source: str) -> str:
    """`NAMESPACE:NAME` (or the full `system:serviceaccount:NAMESPACE:NAME`) as the username the API
    server gives that service account; ValueError naming `source` otherwise."""
    rest = text.removeprefix(SERVICE_ACCOUNT_PREFIX)
    namespace, sep, name = rest.partition(":")
    if not sep or not _ACCOUNT_PART.fullmatch(namespace) or not _ACCOUNT_PART.fullmatch(name):
        raise ValueError(
            f"{source}: {text!r} is not a service account; give NAMESPACE:NAME, "
            "e.g. jesus-system:jesus-operator"
        )
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


class StaticTokenAuthenticator:
    """Local mode: the caller presents the token both processes were given."""

    where = "static-token"

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the static admin token is empty")
        self._token = token

    async def authenticate(self, header: str | None) -> AdminDecision:
        token = bearer_token(header)
        if isinstance(token, AdminDecision):
            return token
        if not same_token(token, self._token):
            return AdminDecision(401, "the admin token is not this router's")
        return AdminDecision(200, "the static admin token", who="static-token")


@dataclass(frozen=True, slots=True)
class TokenReviewResult:
    """What the API server said of a token: TokenReview's status."""

    authenticated: bool
    username: str = ""
    audiences: tuple[str, ...] = ()
    error: str = ""


class ReviewUnavailableError(Exception):
    """The API server could not be asked, or refused to review; the message says which."""


class TokenReviewer(Protocol):
    """Asks the API server who a token belongs to (a TokenReview for `audiences`)."""

    async def review(self, token: str, audiences: list[str]) -> TokenReviewResult: ...


def review_decision(result: TokenReviewResult, *, username: str, audience: str) -> AdminDecision:
    """The decision on a reviewed token: it must be authenticated, for `audience`, as `username`."""
    if not result.authenticated:
        why = f": {result.error[:200]}" if result.error else ""
        return AdminDecision(
            401, f"the API server does not authenticate this token for audience {audience}{why}"
        )
    if result.audiences and audience not in result.audiences:
        return AdminDecision(
            401, f"the token is for audiences {list(result.audiences)}, not {audience}", who=result.username
        )
    if result.username != username:
        return AdminDecision(
            403,
            f"the token belongs to {result.username!r}; only the operator's service account "
            f"{username!r} may use the admin API",
            who=result.username,
        )
    return AdminDecision(200, "the operator's service account", who=result.username)


class TokenReviewAuthenticator:
    """Cluster mode: only `username` (the operator's service account), by TokenReview for `audience`.

    Decisions are cached for `cache_seconds` by the token's SHA-256 (never the token itself), at most
    `max_cached` of them; an unreachable API server is never cached.
    """

    def __init__(
        self,
        reviewer: TokenReviewer,
        *,
        username: str,
        audience: str,
        clock: Callable[[], float],
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        max_cached: int = DEFAULT_MAX_CACHED,
        timeout_seconds: float = DEFAULT_REVIEW_TIMEOUT_SECONDS,
    ) -> None:
        if not audience:
            raise ValueError("the admin API's token audience is empty")
        self._reviewer = reviewer
        self.username, self.audience = username, audience
        self._clock = clock
        self._cache_seconds, self._max_cached = cache_seconds, max_cached
        self._timeout = timeout_seconds
        self._cache: dict[str, tuple[float, AdminDecision]] = {}
        self.where = f"token-review user={username} audience={audience}"

    async def authenticate(self, header: str | None) -> AdminDecision:
        token = bearer_token(header)
        if isinstance(token, AdminDecision):
            return token
        key = hashlib.sha256(token.encode("ascii")).hexdigest()
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            async with asyncio.timeout(self._timeout):
                result = await self._reviewer.review(token, [self.audience])
        except TimeoutError:
            return AdminDecision(
                503, f"the API server did not answer the TokenReview within {self._timeout:g}s; refused"
            )
        except ReviewUnavailableError as exc:
            return AdminDecision(503, f"the token cannot be reviewed ({exc}); refused")
        decision = review_decision(result, username=self.username, audience=self.audience)
        self._remember(key, now + self._cache_seconds, decision)
        return decision

    def _remember(self, key: str, until: float, decision: AdminDecision) -> None:
        if self._cache_seconds <= 0:
            return
        if len(self._cache) >= self._max_cached:
            now = self._clock()
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            while len(self._cache) >= self._max_cached:
                del self._cache[next(iter(self._cache))]  # the oldest entry
        self._cache[key] = (until, decision)
