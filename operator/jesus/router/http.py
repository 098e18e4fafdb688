"""What every endpoint of the router service needs: the bearer token of a request, token comparison,
and error responses."""

from __future__ import annotations

import hmac
import json
import math
import re

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jesus.router.accounts import STORE_RETRY_AFTER_SECONDS
from jesus.router.bodies import InputRefusedError
from jesus.router.routed import RouteError
from jesus.router.tokens import MAX_TOKEN_LENGTH
from jesus.router.wire import error_body
from jesus_adapters.errors import RouteErrorKind, error_rule


class SafeJSONResponse(JSONResponse):
    """A JSON response that renders any text: a lone surrogate (half an emoji a provider split, a byte an
    SDK decoded with surrogateescape) cannot be UTF-8, so such a body is written with ASCII escapes
    instead of failing as a 500. Every other body renders exactly as JSONResponse renders it."""

    def render(self, content: object) -> bytes:
        """The body as UTF-8 JSON; with `\\uXXXX` escapes when some text in it cannot be UTF-8."""
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


# Errors the routing table raises before any endpoint runs, by the code they get.
_ROUTING_KINDS = {404: "NotFound", 405: "MethodNotAllowed"}

# Printable ASCII without spaces: what the router issues (and RFC 6750's token68, and then some).
_TOKEN = re.compile(r"[!-~]+")


def bearer(request: Request) -> str | None:
    """The request's `Authorization: Bearer` token; None when there is none or it cannot be one of ours
    (not printable ASCII, or longer than any token the router issues)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or len(token) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
        return None
    return token


def same_token(given: str, expected: str) -> bool:
    """Whether two tokens are equal, compared as bytes in constant time (any text may be given)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def error_response(
    status: int, message: str, kind: str, record: dict[str, object] | None = None
) -> JSONResponse:
    """An error in the OpenAI shape, with `kind` as its code and the call's record when there was a call."""
    return SafeJSONResponse(error_body(message, kind=kind, record=record), status_code=status)


def refused_response(exc: InputRefusedError) -> JSONResponse:
    """A request the boundary refused (400, 413, 415), in the OpenAI error shape."""
    return error_response(exc.status, exc.message, exc.kind)


def route_error_response(exc: RouteError) -> JSONResponse:
    """A call no adapter answered, with the status the error table gives its kind and the call's record;
    a `Retry-After` (whole seconds, rounded up) when the last adapter said when it could answer."""
    response = error_response(error_rule(exc.kind).http_status, exc.reason, exc.kind, exc.record.to_dict())
    if exc.retry_after_seconds is not None and exc.retry_after_seconds > 0:
        response.headers["Retry-After"] = str(math.ceil(exc.retry_after_seconds))
    return response


def store_unavailable_response(message: str) -> JSONResponse:
    """A request refused because the shared store of allowances and revocations could not answer: the
    table's status for `SharedStoreUnavailable` (503), and a Retry-After."""
    kind = RouteErrorKind.SHARED_STORE_UNAVAILABLE
    response = error_response(error_rule(kind).http_status, message, kind)
    response.headers["Retry-After"] = str(math.ceil(STORE_RETRY_AFTER_SECONDS))
    return response


async def routing_error_response(request: Request, exc: Exception) -> Response:
    """An unknown path or a method an endpoint does not take (Starlette's HTTPException), in the OpenAI
    error shape like every other refusal; a 405 keeps its Allow header."""
    assert isinstance(exc, HTTPException)  # the only exception this handler is registered for
    return SafeJSONResponse(
        error_body(exc.detail, kind=_ROUTING_KINDS.get(exc.status_code, "InvalidRequest")),
        status_code=exc.status_code,
        headers=exc.headers,
    )
