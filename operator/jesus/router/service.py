"""The router as an HTTP service: OpenAI-compatible `/v1/chat/completions` for runner pods.

A runner authenticates with its run's bearer token; the router maps the token to the run, its route
plan and its allowance, and answers with the provider credentials only it holds. The operator
registers a run (and gets its token) through the admin endpoint, guarded by the admin token.

Endpoints: POST /v1/chat/completions (JSON or SSE stream), GET /v1/models, POST and DELETE
/admin/v1/runs, GET /healthz, GET /metrics.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from jesus.logic.routing import Allowance, RoutePlan
from jesus.router.core import Router
from jesus.router.ledger import RunLedger
from jesus.router.routed import RoutedStreamEnd, RouteError
from jesus.router.tokens import RunGrant, TokenSigner
from jesus.router.tracing import context_from_headers
from jesus.router.wire import (
    WireError,
    chunk_body,
    completion_body,
    error_body,
    final_chunks,
    parse_chat_request,
)
from jesus_adapters.errors import error_rule
from jesus_adapters.types import TextDelta

log = logging.getLogger(__name__)

DEFAULT_TOKEN_TTL_SECONDS = 7 * 24 * 3600


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


PlanResolver = Callable[[str, str, str], RoutePlan]
"""(namespace, RoutePolicy name, data classification) -> the plan; ValueError says why there is none."""


@dataclass
class RouterService:
    """Everything the HTTP layer needs: the router, the run registry, metrics, and admin access."""

    router: Router
    registry: RunRegistry
    metrics_registry: CollectorRegistry
    admin_token: str | None = None
    resolve_plan: PlanResolver | None = None
    clock: Callable[[], float] = time.time
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        # Replicas sharing the admin token share the signing key: any of them accepts any run token.
        self.signer = TokenSigner(self.admin_token) if self.admin_token else None

    def next_id(self) -> str:
        """A completion id, unique within this process."""
        return f"chatcmpl-jesus-{next(self._ids)}"

    def route_for(self, grant: RunGrant) -> RunRoute:
        """The route a grant gives: its RoutePolicy's plan and a fresh ledger. ValueError when the
        policy is unknown or leaves no adapter."""
        if self.resolve_plan is None:
            raise ValueError("this router has no RoutePolicies to resolve")
        plan = self.resolve_plan(grant.namespace, grant.route_policy, grant.classification)
        self.router.check_plan(plan)
        allowance = Allowance(max_tokens=grant.max_tokens, max_cost_micros=grant.max_cost_micros)
        return RunRoute(grant.run, grant.namespace, plan, RunLedger(grant.run, allowance), grant.expires_at)

    def resolve_token(self, token: str) -> RunRoute | None:
        """The route of a known token, or of a genuine signed one seen first here (issued by another
        replica, or before a restart); None otherwise. Expired tokens resolve to None."""
        route = self.registry.resolve(token)
        now = self.clock()
        if route is not None:
            return route if route.expires_at is None or route.expires_at > now else None
        if self.signer is None or self.registry.revoked(token):
            return None
        grant = self.signer.verify(token, now)
        if grant is None:
            return None
        try:
            route = self.route_for(grant)
        except ValueError:
            return None
        self.registry.register(route, token)
        return route


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _error(status: int, message: str, kind: str, record: dict[str, object] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, kind=kind, record=record), status_code=status)


def build_app(service: RouterService) -> Starlette:
    """The Starlette application of the router service."""

    def authorise(request: Request) -> RunRoute | JSONResponse:
        token = _bearer(request)
        if token is None:
            return _error(401, "a run token is required (Authorization: Bearer <token>)", "Unauthenticated")
        route = service.resolve_token(token)
        if route is None:
            return _error(401, "the run token is not known to this router or has expired", "Unauthenticated")
        return route

    async def chat_completions(request: Request) -> Response:
        route = authorise(request)
        if isinstance(route, JSONResponse):
            return route
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the request body is not JSON", "InvalidRequest")
        try:
            chat_request, stream = parse_chat_request(body)
        except WireError as exc:
            return _error(400, str(exc), "InvalidRequest")
        chat_request = type(chat_request)(
            messages=chat_request.messages,
            tools=chat_request.tools,
            max_tokens=chat_request.max_tokens,
            stop=chat_request.stop,
            metadata={"run": route.run, "namespace": route.namespace},
        )
        completion_id = service.next_id()
        trace_context = context_from_headers(request.headers)
        if not stream:
            try:
                routed = await service.router.complete(
                    route.plan, chat_request, route.ledger, trace_context=trace_context
                )
            except RouteError as exc:
                return _error(error_rule(exc.kind).http_status, exc.reason, exc.kind, exc.record.to_dict())
            return JSONResponse(
                completion_body(routed.response, routed.record.to_dict(), completion_id=completion_id)
            )
        events = aiter(
            service.router.stream(route.plan, chat_request, route.ledger, trace_context=trace_context)
        )
        try:
            # The chain is walked before the first event, so a failure here still gets a status code.
            first = await anext(events)
        except RouteError as exc:
            return _error(error_rule(exc.kind).http_status, exc.reason, exc.kind, exc.record.to_dict())
        return StreamingResponse(
            _sse(completion_id, first, events),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )

    async def models(request: Request) -> Response:
        route = authorise(request)
        if isinstance(route, JSONResponse):
            return route
        data = [
            {"id": name, "object": "model", "owned_by": service.router.adapters[name].adapter.provider}
            for name in route.plan.chain
            if name in service.router.adapters
        ]
        return JSONResponse({"object": "list", "data": data})

    def admin_denied(request: Request) -> JSONResponse | None:
        token = _bearer(request)
        if service.admin_token is None:
            return _error(404, "the admin API is disabled (no admin token configured)", "NotFound")
        if token is None or not hmac.compare_digest(token, service.admin_token):
            return _error(401, "the admin token is required", "Unauthenticated")
        return None

    async def register_run(request: Request) -> Response:
        denied = admin_denied(request)
        if denied is not None:
            return denied
        try:
            body = await request.json()
            run = str(body["run"])
            namespace = str(body.get("namespace") or "default")
            route_policy = str(body["routePolicy"])
            classification = str(body.get("dataClassification") or "internal")
            max_tokens = _optional_int(body.get("maxTokens"))
            max_cost_micros = _optional_int(body.get("maxCostMicros"))
            ttl = _optional_int(body.get("ttlSeconds")) or DEFAULT_TOKEN_TTL_SECONDS
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return _error(400, f"expected run, routePolicy and optional limits: {exc}", "InvalidRequest")
        grant = RunGrant(
            run=run,
            namespace=namespace,
            route_policy=route_policy,
            classification=classification,
            max_tokens=max_tokens,
            max_cost_micros=max_cost_micros,
            expires_at=int(service.clock()) + ttl,
            nonce=secrets.token_urlsafe(12),
        )
        try:
            route = service.route_for(grant)
        except ValueError as exc:
            return _error(409, str(exc), "RouteUnavailable")
        service.registry.evict_expired(service.clock())
        token = service.registry.register(route, service.signer.sign(grant) if service.signer else None)
        log.info("Registered run run=%s namespace=%s route=%s", run, namespace, route_policy)
        return JSONResponse(
            {
                "run": run,
                "namespace": namespace,
                "token": token,
                "chain": list(route.plan.chain),
                "expiresAt": grant.expires_at,
            },
            201,
        )

    async def revoke_run(request: Request) -> Response:
        denied = admin_denied(request)
        if denied is not None:
            return denied
        token = request.query_params.get("token", "")
        known = service.registry.revoke(token)
        genuine = service.signer is not None and service.signer.verify(token, service.clock()) is not None
        if not known and not genuine:
            return _error(404, "no run has that token", "NotFound")
        return Response(status_code=204)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "runs": len(service.registry)})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(service.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/admin/v1/runs", register_run, methods=["POST"]),
            Route("/admin/v1/runs", revoke_run, methods=["DELETE"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{value!r} is not a non-negative integer")
    return value


async def _sse(
    completion_id: str,
    first: TextDelta | RoutedStreamEnd,
    events: AsyncIterator[TextDelta | RoutedStreamEnd],
) -> AsyncIterator[bytes]:
    model = ""
    event: TextDelta | RoutedStreamEnd | None = first
    try:
        while event is not None:
            if isinstance(event, RoutedStreamEnd):
                for chunk in final_chunks(completion_id, event.response, event.record.to_dict()):
                    yield _frame(chunk)
                break
            yield _frame(chunk_body(completion_id, model, {"role": "assistant", "content": event.text}, None))
            event = await anext(events, None)
    except RouteError as exc:
        # Text already went out, so no status code can change: the error travels as an event.
        yield _frame(error_body(exc.reason, kind=exc.kind, record=exc.record.to_dict()))
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
    yield b"data: [DONE]\n\n"


def _frame(payload: object) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
