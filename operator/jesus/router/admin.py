"""The router's admin endpoints: the operator registers a run (and gets its token) and revokes it.

Only the operator may call them (`jesus.router.admin_auth`: its service account by TokenReview in a
cluster, a static token without one); disabled (404) when the router is given neither.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jesus.api.registration import DEFAULT_TOKEN_TTL_SECONDS as DEFAULT_TOKEN_TTL_SECONDS  # its old home
from jesus.api.registration import MeteredSpend, RunRegistration
from jesus.router.accounts import SharedStoreError, seconds_left, token_key
from jesus.router.bodies import InputRefusedError, read_json
from jesus.router.http import (
    SafeJSONResponse,
    error_response,
    refused_response,
    store_unavailable_response,
)
from jesus.router.logsafe import router_logger
from jesus.router.schema import error_text
from jesus.router.tokens import RunGrant, TokenTooLongError

if TYPE_CHECKING:  # the service builds its app from these endpoints
    from jesus.router.service import RouterService

log = router_logger("jesus.router.service")  # the name the service's log lines have always had


async def _admin_denied(service: RouterService, request: Request) -> JSONResponse | None:
    if service.admin is None:
        return error_response(
            404,
            "the admin API is disabled (no --operator-account and no $JESUS_ROUTER_ADMIN_TOKEN)",
            "NotFound",
        )
    decision = await service.admin.authenticate(request.headers.get("authorization"))
    if decision.allowed:
        return None
    log.warning(
        "Refused admin request path=%s status=%d reason=%s",
        request.url.path,
        decision.status,
        decision.reason,
    )
    response = error_response(decision.status, decision.reason, decision.kind)
    if decision.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="jesus-router-admin"'
    return response


async def _registration(service: RouterService, request: Request) -> RunRegistration | JSONResponse:
    """The request's run registration (`jesus.api.registration`, shared with the operator), or the 4xx."""
    try:
        return RunRegistration.model_validate(await read_json(request, service.limits))
    except InputRefusedError as exc:
        return refused_response(exc)
    except ValidationError as exc:
        return error_response(400, error_text(exc), "InvalidRequest")


async def register_run(service: RouterService, request: Request) -> Response:
    """POST /admin/v1/runs: grant a run its route and allowance; answers the run's token."""
    denied = await _admin_denied(service, request)
    if denied is not None:
        return denied
    registration = await _registration(service, request)
    if isinstance(registration, JSONResponse):
        return registration
    try:
        # Resolved once, here: every later call of the run, on any replica, walks this plan (ADR 16).
        plan = service.pin_plan(
            registration.namespace, registration.route_policy, registration.data_classification.value
        )
    except ValueError as exc:
        return error_response(409, str(exc), "RouteUnavailable")
    grant = RunGrant(
        run=registration.run,
        namespace=registration.namespace,
        route_policy=registration.route_policy,
        classification=registration.data_classification.value,
        max_tokens=registration.max_tokens,
        max_cost_micros=registration.max_cost_micros,
        expires_at=int(service.clock()) + registration.ttl_seconds,
        nonce=secrets.token_urlsafe(12),
        plan=plan,
    )
    try:
        signed = service.signer.sign(grant) if service.signer else None
    except TokenTooLongError as exc:
        return error_response(409, str(exc), "RouteUnavailable")
    token = signed or secrets.token_urlsafe(32)
    key = token_key(token)
    route = service.route_for(grant, key)
    try:
        await service.accounts.open(key, ttl_seconds=registration.ttl_seconds)
    except SharedStoreError as exc:
        return store_unavailable_response(f"the run's account cannot be created: {exc}")
    service.registry.evict_expired(service.clock())
    service.registry.register(route, token)
    log.info("Registered run run=%s namespace=%s route=%s", grant.run, grant.namespace, grant.route_policy)
    return SafeJSONResponse(
        {
            "run": grant.run,
            "namespace": grant.namespace,
            "token": token,
            "chain": list(route.plan.chain),
            "expiresAt": grant.expires_at,
        },
        201,
    )


async def revoke_run(service: RouterService, request: Request) -> Response:
    """DELETE /admin/v1/runs?token=...: refuse a run's token from now on, and answer what it metered
    (`jesus.api.registration.MeteredSpend`; `metered` is null when this replica cannot know: a token
    it never routed, with accounts in its own memory). Revoking again answers the same figures."""
    denied = await _admin_denied(service, request)
    if denied is not None:
        return denied
    token = request.query_params.get("token", "")
    now = service.clock()
    # The route stays in the registry until its token expires: its account answers a second revoke.
    route = service.registry.resolve(token)
    grant = service.signer.verify(token, now) if service.signer is not None else None
    expires_at: float | None
    if grant is not None:
        run, expires_at = grant.run, grant.expires_at
    elif route is not None:
        run, expires_at = route.run, route.expires_at
    else:
        return error_response(404, "no run has that token", "NotFound")
    key = token_key(token)
    try:
        # Shared with every replica that uses the same store, until the token would have expired.
        await service.accounts.revoke(key, ttl_seconds=seconds_left(expires_at, now))
        figures = await route.ledger.metered() if route is not None else await service.accounts.metered(key)
    except SharedStoreError as exc:
        return store_unavailable_response(f"the run token cannot be revoked: {exc}")
    metered = None
    if figures is not None:
        spent, reserved = figures
        metered = MeteredSpend(
            tokens=spent.tokens,
            cost_micros=spent.cost_micros,
            in_flight_tokens=max(0, reserved.tokens),
            in_flight_cost_micros=max(0, reserved.cost_micros),
        ).to_wire()
    log.info(
        "Revoked run token run=%s costMicros=%s",
        run,
        "unknown" if metered is None else metered["costMicros"],
    )
    return SafeJSONResponse({"run": run, "metered": metered}, 200)
