"""The router's admin endpoints: the operator registers a run (and gets its token) and revokes it.

Guarded by the admin token; disabled (404) when the router has none.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jesus.router.http import bearer, error_response
from jesus.router.tokens import RunGrant

if TYPE_CHECKING:  # the service builds its app from these endpoints
    from jesus.router.service import RouterService

log = logging.getLogger("jesus.router.service")  # the name the service's log lines have always had

DEFAULT_TOKEN_TTL_SECONDS = 7 * 24 * 3600


def _admin_denied(service: RouterService, request: Request) -> JSONResponse | None:
    token = bearer(request)
    if service.admin_token is None:
        return error_response(404, "the admin API is disabled (no admin token configured)", "NotFound")
    if token is None or not hmac.compare_digest(token, service.admin_token):
        return error_response(401, "the admin token is required", "Unauthenticated")
    return None


async def register_run(service: RouterService, request: Request) -> Response:
    """POST /admin/v1/runs: grant a run its route and allowance; answers the run's token."""
    denied = _admin_denied(service, request)
    if denied is not None:
        return denied
    try:
        body = await request.json()
        ttl = _optional_int(body.get("ttlSeconds")) or DEFAULT_TOKEN_TTL_SECONDS
        # The body is parsed straight into the grant: a missing or malformed field is the caller's 400.
        grant = RunGrant(
            run=str(body["run"]),
            namespace=str(body.get("namespace") or "default"),
            route_policy=str(body["routePolicy"]),
            classification=str(body.get("dataClassification") or "internal"),
            max_tokens=_optional_int(body.get("maxTokens")),
            max_cost_micros=_optional_int(body.get("maxCostMicros")),
            expires_at=int(service.clock()) + ttl,
            nonce=secrets.token_urlsafe(12),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return error_response(400, f"expected run, routePolicy and optional limits: {exc}", "InvalidRequest")
    try:
        route = service.route_for(grant)
    except ValueError as exc:
        return error_response(409, str(exc), "RouteUnavailable")
    service.registry.evict_expired(service.clock())
    token = service.registry.register(route, service.signer.sign(grant) if service.signer else None)
    log.info("Registered run run=%s namespace=%s route=%s", grant.run, grant.namespace, grant.route_policy)
    return JSONResponse(
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


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{value!r} is not a non-negative integer")
    return value
