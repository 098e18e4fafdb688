"""What every endpoint of the router service needs: the bearer token of a request, and error responses."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from jesus.router.routed import RouteError
from jesus.router.wire import error_body
from jesus_adapters.errors import error_rule


def bearer(request: Request) -> str | None:
    """The request's `Authorization: Bearer` token, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def error_response(
    status: int, message: str, kind: str, record: dict[str, object] | None = None
) -> JSONResponse:
    """An error in the OpenAI shape, with `kind` as its code and the call's record when there was a call."""
    return JSONResponse(error_body(message, kind=kind, record=record), status_code=status)


def route_error_response(exc: RouteError) -> JSONResponse:
    """A call no adapter answered, with the status the error table gives its kind and the call's record."""
    return error_response(error_rule(exc.kind).http_status, exc.reason, exc.kind, exc.record.to_dict())
