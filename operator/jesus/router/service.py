"""The router as an HTTP service: OpenAI-compatible `/v1/chat/completions` for runner pods.

A runner authenticates with its run's bearer token; the router maps the token to the run, its route
plan and its allowance, and answers with the provider credentials only it holds. The operator
registers a run (and gets its token) through the admin endpoint: in a cluster only the operator's
service account may (TokenReview), without one a static admin token (`jesus.router.admin_auth`).

Endpoints: POST /v1/chat/completions (JSON or SSE stream), GET /v1/models, POST and DELETE
/admin/v1/runs, GET /healthz, GET /metrics.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from functools import partial

from opentelemetry.context import Context
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from jesus.logic.allowance import Allowance
from jesus.logic.routing import RoutePlan
from jesus.router.accounts import (
    AccountStore,
    MemoryAccountStore,
    SharedStoreError,
    token_key,
)
from jesus.router.admin import register_run, revoke_run
from jesus.router.admin_auth import AdminAuthenticator, StaticTokenAuthenticator
from jesus.router.bodies import InputLimits, InputRefusedError, read_json
from jesus.router.core import Router
from jesus.router.http import (
    SafeJSONResponse,
    bearer,
    error_response,
    refused_response,
    route_error_response,
    routing_error_response,
    store_unavailable_response,
)
from jesus.router.registry import RunRegistry, RunRoute
from jesus.router.routed import RoutedStreamEnd, RouteError
from jesus.router.tokens import RunGrant, TokenSigner
from jesus.router.tracing import context_from_headers, trace_id_of
from jesus.router.wire import (
    WireError,
    chunk_body,
    completion_body,
    error_body,
    final_chunks,
    parse_chat_request,
)
from jesus.telemetry import log_fields
from jesus_adapters.types import ChatRequest, TextDelta

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]
"""What runs around serving: started before the first request, stopped after the last."""

PlanResolver = Callable[[str, str, str], RoutePlan]
"""(namespace, RoutePolicy name, data classification) -> the plan; ValueError says why there is none."""


@dataclass
class RouterService:
    """Everything the HTTP layer needs: the router, the run registry, metrics, and admin access.

    `admin` decides who may call the admin API (None: it is disabled); `admin_token` is the local
    mode's shorthand for a static-token authenticator. Run tokens are signed with `signing_key`, which
    only router replicas hold; without one, a static admin token stands in for it (local mode), and
    without either no token is signed (a registered run is known to this replica only).
    """

    router: Router
    registry: RunRegistry
    metrics_registry: CollectorRegistry
    admin_token: str | None = None
    admin: AdminAuthenticator | None = None
    signing_key: str | None = None
    resolve_plan: PlanResolver | None = None
    clock: Callable[[], float] = time.time
    limits: InputLimits = field(default_factory=InputLimits)
    # Runs' accounts and revoked tokens: this process's memory unless replicas share a store (ADR 17).
    store: AccountStore | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        if self.admin is None and self.admin_token:
            self.admin = StaticTokenAuthenticator(self.admin_token)
        # Replicas sharing the signing key accept each other's run tokens, and keep them over a restart.
        key = self.signing_key or self.admin_token
        self.signer = TokenSigner(key) if key else None
        self.accounts: AccountStore = self.store or MemoryAccountStore(self.clock)

    def next_id(self) -> str:
        """A completion id, unique within this process."""
        return f"chatcmpl-jesus-{next(self._ids)}"

    def pin_plan(self, namespace: str, route_policy: str, classification: str) -> RoutePlan:
        """The RoutePolicy's plan now, with its adapters' current prices pinned (ADR 16). ValueError
        when the policy is unknown or leaves no adapter."""
        if self.resolve_plan is None:
            raise ValueError("this router has no RoutePolicies to resolve")
        return self.router.pin(self.resolve_plan(namespace, route_policy, classification))

    def route_for(self, grant: RunGrant, key: str) -> RunRoute:
        """The route a grant gives: the plan pinned in it (never the RoutePolicy as it is now) and the
        run's account in the store, under its token's `key`. A grant of the first token format has no
        plan: it is pinned here, on first sight. ValueError when that policy is unknown or leaves no
        adapter."""
        plan = grant.plan
        if plan is None:
            plan = self.pin_plan(grant.namespace, grant.route_policy, grant.classification)
        allowance = Allowance(max_tokens=grant.max_tokens, max_cost_micros=grant.max_cost_micros)
        account = self.accounts.account(key, grant.run, allowance)
        return RunRoute(grant.run, grant.namespace, plan, account, grant.expires_at)

    async def resolve_token(self, token: str) -> RunRoute | None:
        """The route of a known token, or of a genuine signed one seen first here (issued by another
        replica, or before a restart); None otherwise. Expired tokens and tokens revoked through any
        replica resolve to None; SharedStoreError when the store cannot say whether it was revoked."""
        route = self.registry.resolve(token)
        now = self.clock()
        if route is None:
            grant = self.signer.verify(token, now) if self.signer is not None else None
            if grant is None or await self.accounts.revoked(token_key(token)):
                return None
            try:
                route = self.route_for(grant, token_key(token))
            except ValueError:
                return None
            self.registry.register(route, token)
            return route
        if route.expires_at is not None and route.expires_at <= now:
            return None
        if await self.accounts.revoked(token_key(token)):
            self.registry.forget(token)  # revoked through another replica
            return None
        return route


def build_app(service: RouterService, *, lifespan: Lifespan | None = None) -> Starlette:
    """The Starlette application of the router service; `lifespan` runs around serving (the watches
    of a router that reads the cluster)."""
    return Starlette(
        lifespan=lifespan,
        routes=[
            Route("/v1/chat/completions", partial(chat_completions, service), methods=["POST"]),
            Route("/v1/models", partial(list_models, service), methods=["GET"]),
            Route("/admin/v1/runs", partial(register_run, service), methods=["POST"]),
            Route("/admin/v1/runs", partial(revoke_run, service), methods=["DELETE"]),
            Route("/healthz", partial(healthz, service), methods=["GET"]),
            Route("/metrics", partial(metrics, service), methods=["GET"]),
        ],
        exception_handlers={HTTPException: routing_error_response},
    )


async def _authorise(service: RouterService, request: Request) -> RunRoute | JSONResponse:
    """The route the request's run token grants, or the 401 (or, when the shared store cannot say
    whether the token was revoked, the 503) to answer."""
    token = bearer(request)
    if token is None:
        return error_response(
            401, "a run token is required (Authorization: Bearer <token>)", "Unauthenticated"
        )
    try:
        route = await service.resolve_token(token)
    except SharedStoreError as exc:
        return store_unavailable_response(f"the router cannot check whether the run token was revoked: {exc}")
    if route is None:
        return error_response(
            401, "the run token is not known to this router or has expired", "Unauthenticated"
        )
    return route


async def chat_completions(service: RouterService, request: Request) -> Response:
    """POST /v1/chat/completions: route the run's request, as one JSON answer or an SSE stream."""
    route = await _authorise(service, request)
    if isinstance(route, JSONResponse):
        return route
    try:
        chat_request, stream = parse_chat_request(await read_json(request, service.limits))
    except InputRefusedError as exc:
        return refused_response(exc)
    except WireError as exc:
        return error_response(400, str(exc), "InvalidRequest")
    chat_request = replace(chat_request, metadata={"run": route.run, "namespace": route.namespace})
    trace_context = context_from_headers(request.headers)
    # The call's log lines name its run and its trace (the runner's, from `traceparent`).
    with log_fields(namespace=route.namespace, run=route.run, trace_id=trace_id_of(trace_context)):
        return await _route_call(service, route, chat_request, stream, trace_context)


async def _route_call(
    service: RouterService, route: RunRoute, chat_request: ChatRequest, stream: bool, trace_context: Context
) -> Response:
    completion_id = service.next_id()
    if not stream:
        try:
            routed = await service.router.complete(
                route.plan, chat_request, route.ledger, trace_context=trace_context
            )
        except RouteError as exc:
            return route_error_response(exc)
        return SafeJSONResponse(
            completion_body(routed.response, routed.record.to_dict(), completion_id=completion_id)
        )
    events = aiter(service.router.stream(route.plan, chat_request, route.ledger, trace_context=trace_context))
    try:
        # The chain is walked before the first event, so a failure here still gets a status code.
        first = await anext(events)
    except RouteError as exc:
        return route_error_response(exc)
    return _ClosingStream(_sse(completion_id, first, events))


async def list_models(service: RouterService, request: Request) -> Response:
    """GET /v1/models: the adapters of the run's chain, as OpenAI models."""
    route = await _authorise(service, request)
    if isinstance(route, JSONResponse):
        return route
    data = [
        {"id": name, "object": "model", "owned_by": service.router.adapters[name].adapter.provider}
        for name in route.plan.chain
        if name in service.router.adapters
    ]
    return SafeJSONResponse({"object": "list", "data": data})


async def healthz(service: RouterService, request: Request) -> Response:
    """GET /healthz: alive, and how many runs it holds."""
    return SafeJSONResponse({"status": "ok", "runs": len(service.registry)})


async def metrics(service: RouterService, request: Request) -> Response:
    """GET /metrics: the router's registry in the format the scraper accepts (OpenMetrics, which carries
    the latency's trace exemplars, when it asks for it; else Prometheus's text format)."""
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(service.metrics_registry), media_type=content_type)


class _ClosingStream(StreamingResponse):
    """An SSE response whose generator is closed however the response ends. When the client has gone,
    the server's send raises and Starlette abandons the generator mid-stream: it kept the call's
    reservation (and the provider's stream) until garbage collection came round to it."""

    def __init__(self, frames: AsyncGenerator[bytes, None]) -> None:
        super().__init__(frames, media_type="text/event-stream", headers={"cache-control": "no-cache"})
        self._frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._frames.aclose()


async def _sse(
    completion_id: str,
    first: TextDelta | RoutedStreamEnd,
    events: AsyncIterator[TextDelta | RoutedStreamEnd],
) -> AsyncGenerator[bytes, None]:
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
