"""Who is calling the read API, and which namespaces they may read.

In a cluster the caller presents a bearer token; the API server says whose it is (a TokenReview, the
router's admin API does the same: ADR 24) and whether that user may list AgentRuns in a namespace (a
SubjectAccessReview per namespace, after one cluster-wide review). The answers are kept for
`cache_seconds` on an injected clock, keyed by the token's SHA-256 (never the token) and by the user,
so a page of requests costs a review or two. Anything uncertain refuses: no or a malformed header (401),
a token the API server does not authenticate (401), an API server that cannot be asked (503).

Local mode (`jesus api --local`, no cluster) has one caller, who reads every namespace; the command
serves it only on a loopback address.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from jesus.api.common import GROUP
from jesus.api.objects import JsonObject
from jesus.router.admin_auth import AdminDecision, bearer_token

logger = logging.getLogger(__name__)
T = TypeVar("T")
V = TypeVar("V")

DEFAULT_CACHE_SECONDS = 10.0
DEFAULT_MAX_CACHED = 1024
DEFAULT_REVIEW_TIMEOUT_SECONDS = 5.0
# A caller's reviews run this many at a time: a cluster of 500 namespaces is asked in batches.
REVIEW_CONCURRENCY = 16


class AccessUnavailableError(Exception):
    """The API server could not be asked (or refused to review): the request is refused with 503."""


class UnauthenticatedError(Exception):
    """No usable token: the request is refused with 401."""


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the user the API server named, or the local user (`everything`)."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    everything: bool = False
    """Local mode: every namespace is visible, nothing is reviewed."""

    @property
    def user(self) -> JsonObject:
        """The user as a SubjectAccessReview's spec names it."""
        return {
            "username": self.username,
            "uid": self.uid,
            "groups": list(self.groups),
            "extra": {k: list(v) for k, v in self.extra},
        }


LOCAL_CALLER = Caller("local", everything=True)


class ClusterReviews(Protocol):
    """The two questions the API server answers (`jesus.kube.KubeClient` has them)."""

    async def review_token(self, token: str, audiences: list[str]) -> JsonObject: ...

    async def review_access(self, user: JsonObject, attributes: JsonObject) -> JsonObject: ...


class Authenticator(Protocol):
    """Turns a request's Authorization header into a Caller, or raises UnauthenticatedError /
    AccessUnavailableError."""

    where: str

    async def authenticate(self, header: str | None) -> Caller: ...


class LocalAuthenticator:
    """Local mode: no token is needed; the caller reads everything."""

    where = "local (no authentication; loopback only)"

    async def authenticate(self, header: str | None) -> Caller:
        return LOCAL_CALLER


@dataclass
class _Cache(Generic[V]):
    clock: Callable[[], float]
    seconds: float
    max_entries: int
    entries: dict[object, tuple[float, V]] = field(default_factory=dict)

    def get(self, key: object) -> V | None:
        found = self.entries.get(key)
        if found is None or found[0] <= self.clock():
            return None
        return found[1]

    def put(self, key: object, value: V) -> None:
        if self.seconds <= 0:
            return
        now = self.clock()
        if len(self.entries) >= self.max_entries:
            self.entries = {k: v for k, v in self.entries.items() if v[0] > now}
            while len(self.entries) >= self.max_entries:
                del self.entries[next(iter(self.entries))]  # the oldest
        self.entries[key] = (now + self.seconds, value)


def caller_from_review(status: JsonObject) -> Caller:
    """The user of an authenticated TokenReview's status."""
    user = status.get("user") or {}
    extra = user.get("extra") or {}
    return Caller(
        username=str(user.get("username") or ""),
        groups=tuple(str(g) for g in user.get("groups") or ()),
        uid=str(user.get("uid") or ""),
        extra=tuple(sorted((str(k), tuple(str(x) for x in v or ())) for k, v in extra.items())),
    )


async def _asked(what: str, seconds: float, call: Awaitable[T]) -> T:
    """`call` within `seconds`, with any failure as AccessUnavailableError naming `what`."""
    from jesus.kube import KubeError

    try:
        async with asyncio.timeout(seconds):
            return await call
    except TimeoutError:
        raise AccessUnavailableError(
            f"the API server did not answer the {what} within {seconds:g}s"
        ) from None
    except KubeError as exc:
        hint = (
            f" (the read API's ServiceAccount needs create on {what.lower()}s)" if exc.status == 403 else ""
        )
        raise AccessUnavailableError(
            f"the API server refused the {what}: {exc.status} {exc.reason}{hint}"
        ) from exc
    except Exception as exc:  # fail closed: a refused connection, a TLS error
        raise AccessUnavailableError(
            f"the API server is unreachable for the {what}: {type(exc).__name__}: {str(exc)[:200]}"
        ) from exc


class TokenReviewAuthenticator:
    """Cluster mode: the user of the bearer token, by TokenReview (for `audiences`; empty: the API
    server's own)."""

    def __init__(
        self,
        reviews: ClusterReviews,
        *,
        clock: Callable[[], float],
        audiences: tuple[str, ...] = (),
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        max_cached: int = DEFAULT_MAX_CACHED,
        timeout_seconds: float = DEFAULT_REVIEW_TIMEOUT_SECONDS,
    ) -> None:
        self._reviews = reviews
        self._audiences = list(audiences)
        self._timeout = timeout_seconds
        self._cache: _Cache[Caller | str] = _Cache(clock, cache_seconds, max_cached)
        self.where = "token-review" + (f" audiences={','.join(audiences)}" if audiences else "")

    async def authenticate(self, header: str | None) -> Caller:
        token = bearer_token(header)
        if isinstance(token, AdminDecision):
            raise UnauthenticatedError(token.reason.replace("the admin API", "the read API"))
        key = hashlib.sha256(token.encode("ascii")).hexdigest()
        known = self._cache.get(key)
        if known is None:
            status = await _asked(
                "TokenReview", self._timeout, self._reviews.review_token(token, self._audiences)
            )
            if status.get("authenticated") and (status.get("user") or {}).get("username"):
                known = caller_from_review(status)
            else:
                error = str(status.get("error") or "")[:200]
                known = "the API server does not authenticate this token" + (f": {error}" if error else "")
            self._cache.put(key, known)
        if isinstance(known, str):
            raise UnauthenticatedError(known)
        return known


class NamespaceAccess:
    """Which namespaces a caller may read: those where the API server lets them list AgentRuns.

    `namespaces` lists the candidates (the archive's namespaces, cached here too): a caller allowed
    cluster-wide sees all of them (and any later one); otherwise each is reviewed.
    """

    def __init__(
        self,
        reviews: ClusterReviews | None,
        namespaces: Callable[[], Awaitable[list[str]]],
        *,
        clock: Callable[[], float],
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        max_cached: int = DEFAULT_MAX_CACHED,
        timeout_seconds: float = DEFAULT_REVIEW_TIMEOUT_SECONDS,
    ) -> None:
        self._reviews = reviews
        self._namespaces = namespaces
        self._timeout = timeout_seconds
        self._allowed: _Cache[bool] = _Cache(clock, cache_seconds, max_cached * 8)
        self._known: _Cache[list[str]] = _Cache(clock, cache_seconds, 1)
        self.reviews_asked = 0

    async def may_read(self, caller: Caller, namespace: str) -> bool:
        """Whether `caller` may list AgentRuns in `namespace`."""
        if caller.everything:
            return True
        if await self._allows(caller, ""):
            return True
        return await self._allows(caller, namespace)

    async def visible(self, caller: Caller) -> frozenset[str] | None:
        """The namespaces `caller` may read; None: all of them."""
        if caller.everything or await self._allows(caller, ""):
            return None
        candidates = self._known.get("all")
        if candidates is None:
            candidates = await self._namespaces()
            self._known.put("all", candidates)
        limit = asyncio.Semaphore(REVIEW_CONCURRENCY)

        async def check(namespace: str) -> bool:
            async with limit:
                return await self._allows(caller, namespace)

        answers = await asyncio.gather(*(check(n) for n in candidates))
        return frozenset(n for n, ok in zip(candidates, answers, strict=True) if ok)

    async def _allows(self, caller: Caller, namespace: str) -> bool:
        key = (caller.username, caller.groups, caller.uid, caller.extra, namespace)
        known = self._allowed.get(key)
        if known is not None:
            return known
        if self._reviews is None:
            raise AccessUnavailableError("no API server to ask whether the caller may read runs")
        attributes: JsonObject = {"verb": "list", "group": GROUP, "resource": "agentruns"}
        if namespace:
            attributes["namespace"] = namespace
        self.reviews_asked += 1
        status = await _asked(
            "SubjectAccessReview", self._timeout, self._reviews.review_access(caller.user, attributes)
        )
        allowed = bool(status.get("allowed")) and not status.get("denied")
        self._allowed.put(key, allowed)
        return allowed
