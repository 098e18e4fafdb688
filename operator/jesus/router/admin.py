"""The router's admin endpoints: the operator registers a run (and gets its token) and revokes it.

Guarded by the admin token; disabled (404) when the router has none.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jesus.api.registration import DEFAULT_TOKEN_TTL_SECONDS as DEFAULT_TOKEN_TTL_SECONDS  # its old home
from jesus.api.registration import RunRegistration
from jesus.router.bodies import InputRefusedError, read_json
from jesus.router.http import SafeJSONResponse, bearer, error_response, refused_response, same_token
from jesus.router.logsafe import router_logger
from jesus.router.schema import error_text
from jesus.router.tokens import RunGrant, TokenTooLongError

if TYPE_CHECKING:  # the service builds its app from these endpoints
    from jesus.router.service import RouterService

log = router_logger("jesus.router.service")  # the name the service's log lines have always had


def _admin_denied(service: RouterService, request: Request) -> JSONResponse | None:
    token = bearer(request)
    if service.admin_token is None:
        return error_response(404, "the admin API is disabled (no admin token configured)", "NotFound")
    if token is None or not same_token(token, service.admin_token):
        return error_response(401, "the admin token is required", "Unauthenticated")
    return None


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
    denied = _admin_denied(service, request)
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
    route = service.route_for(grant)
    service.registry.evict_expired(service.clock())
    token = service.registry.register(route, signed)
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
    """DELETE /admin/v1/runs?token=...: refuse a run's token from now on."""
    denied = _admin_denied(service, request)
    if denied is not None:
        return denied
    token = request.query_params.get("token", "")
    known = service.registry.revoke(token)
    genuine = service.signer is not None and service.signer.verify(token, service.clock()) is not None
    if not known and not genuine:
        return error_response(404, "no run has that token", "NotFound")
    return Response(status_code=204)
