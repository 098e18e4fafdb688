"""The read API's routes: FastAPI over `ReadService`, behind an `Authenticator`.

Read-only and versioned under /v1. Every query parameter is checked by `jesus.logic.run_queries`; a bad
one is a 400 whose body names it. A namespace the caller may not read looks exactly like one without
runs (an empty list, a 404 for a run), so the API does not tell a caller what exists where they cannot
look. /healthz and /openapi.json need no token.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at definition time.
import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer

from jesus.logic.run_queries import QueryError
from jesus.readapi.access import AccessUnavailableError, Authenticator, Caller, UnauthenticatedError
from jesus.readapi.artifacts import artifact_router
from jesus.readapi.dashboard import DashboardSettings, dashboard_router, session_header, static_files
from jesus.readapi.hot_routes import HotRoutes, Refusal
from jesus.readapi.models import (
    AuditList,
    Body,
    BudgetList,
    CallList,
    CostReport,
    ErrorBody,
    RunDetail,
    RunList,
)
from jesus.readapi.service import NotFoundError, ReadService
from jesus.records import StoreUnavailableError

logger = logging.getLogger(__name__)

API_TITLE = "Jesus read API"
API_VERSION = "v1"

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "a parameter is wrong; `error.parameter` names it"},
    401: {"model": ErrorBody, "description": "no bearer token, or one the API server does not accept"},
    503: {"model": ErrorBody, "description": "the archive or the API server could not be asked"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no archived run of that name the caller may read"},
}


_BEARER = HTTPBearer(auto_error=False, description="a Kubernetes token (e.g. `kubectl create token`)")


async def _caller(request: Request, _scheme: Annotated[Any, Depends(_BEARER)] = None) -> Caller:
    """The request's caller (the bearer scheme is declared for the OpenAPI document; the header is
    read whole, so every malformed form gets its own 401). Without a header, the dashboard's cookie
    stands for it, so a signed-in browser can follow a link to the API (an artifact's download)."""
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.authenticate(session_header(request))


Authenticated = Annotated[Caller, Depends(_caller)]
Namespace = Annotated[str, Path(max_length=63, description="the run's namespace")]
Name = Annotated[str, Path(max_length=253, description="the run's name")]
Limit = Annotated[int | None, Query(description="page size, 1 to 500 (default 50)")]
Cursor = Annotated[str | None, Query(description="the `nextCursor` of the previous page")]
From = Annotated[str | None, Query(alias="from", description="completed at or after (RFC 3339)")]
To = Annotated[str | None, Query(alias="to", description="completed before (RFC 3339)")]
Uid = Annotated[str | None, Query(max_length=64, description="one run of several of this name")]


def answer(body: Body) -> Response:
    """`body` as JSON, camelCase: the service built it from typed columns, so FastAPI's validation of
    it against the route's response model (a third of a list's time) is skipped; the model still
    documents the route in /openapi.json."""
    return Response(body.model_dump_json(by_alias=True), media_type="application/json")


def json_response(body: bytes) -> Response:
    """A JSON body the service wrote (`jesus.readapi.bodies`)."""
    return Response(body, media_type="application/json")


def error(status: int, code: str, message: str, parameter: str | None = None) -> JSONResponse:
    """The error body every refusal has."""
    detail: dict[str, Any] = {"code": code, "message": message}
    if parameter is not None:
        detail["parameter"] = parameter
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


def _bad_request(exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("query", "path")]
    parameter = location[0] if location else "request"
    return error(400, "BadParameter", str(first.get("msg", "is not valid")), parameter)


def _bad_query(exc: Exception) -> JSONResponse:
    assert isinstance(exc, QueryError)
    return error(400, "BadParameter", exc.message, exc.parameter)


def _no_reviews(exc: Exception) -> JSONResponse:
    logger.warning("Refused a request: access could not be reviewed: %s", exc)
    return error(503, "Unavailable", f"access cannot be checked now ({exc}); refused")


def _no_archive(exc: Exception) -> JSONResponse:
    logger.warning("Failed a request: %s", exc)
    return error(503, "Unavailable", str(exc))


REFUSALS: dict[type[Exception], Refusal] = {
    QueryError: _bad_query,
    RequestValidationError: _bad_request,
    UnauthenticatedError: lambda exc: error(401, "Unauthenticated", str(exc)),
    AccessUnavailableError: _no_reviews,
    StoreUnavailableError: _no_archive,
    NotFoundError: lambda exc: error(404, "NotFound", str(exc)),
}
"""Every refusal's response by the exception that makes it: FastAPI's handlers and `HotRoutes` use it."""


async def _handler(_request: Request, exc: Exception) -> JSONResponse:
    for kind in type(exc).__mro__:
        if kind in REFUSALS:
            return REFUSALS[kind](exc)
    raise exc  # unreachable: registered for the refusals' classes only


def create_app(
    service: ReadService,
    authenticator: Authenticator,
    dashboard: DashboardSettings | None = None,
    *,
    hot_routes: bool = True,
) -> FastAPI:
    """The ASGI application of the read API: `service`'s answers behind `authenticator`, and the web
    dashboard's pages with `dashboard` settings (docs/dashboard.md). `hot_routes`: the list, detail and
    cost GETs answered in front of FastAPI's routing (`jesus.readapi.hot_routes`; off only to test
    that both give the same answers)."""
    app = FastAPI(
        title=API_TITLE,
        version=API_VERSION,
        description=(
            "Read-only access to the archive of finished AgentRuns, their model calls and costs, the "
            "Budgets, and the audit log. Bearer tokens are checked by the Kubernetes API server "
            "(TokenReview); each caller sees the namespaces where it may list AgentRuns "
            "(SubjectAccessReview). See docs/api.md."
        ),
        docs_url=None,
        redoc_url=None,
    )
    app.state.authenticator = authenticator
    app.state.service = service

    for kind in REFUSALS:
        app.add_exception_handler(kind, _handler)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/runs", response_model=RunList, responses=_ERRORS, tags=["runs"])
    async def list_runs(
        who: Authenticated,
        namespace: str | None = None,
        team: str | None = None,
        user: str | None = None,
        phase: str | None = None,
        model: str | None = None,
        start: From = None,
        end: To = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> Response:
        """Archived runs, newest first (by completion time), one page at a time."""
        return json_response(await service.list_runs_body(
            who, namespace=namespace, team=team, user=user, phase=phase, model=model, start=start, end=end,
            limit=limit, cursor=cursor,
        ))  # fmt: skip

    @app.get(
        "/v1/runs/{namespace}/{name}",
        response_model=RunDetail,
        responses={**_ERRORS, **_NOT_FOUND},
        tags=["runs"],
    )
    async def get_run(who: Authenticated, namespace: Namespace, name: Name, uid: Uid = None) -> Response:
        """One archived run with its whole record (the newest of that name unless `uid` is given)."""
        return json_response(await service.get_run_body(who, namespace, name, uid))

    @app.get(
        "/v1/runs/{namespace}/{name}/calls",
        response_model=CallList,
        responses={**_ERRORS, **_NOT_FOUND},
        tags=["runs"],
    )
    async def get_calls(who: Authenticated, namespace: Namespace, name: Name, uid: Uid = None) -> Response:
        """The model calls of an archived run, in order, with their fallbacks."""
        return answer(await service.calls(who, namespace, name, uid))

    @app.get("/v1/costs", response_model=CostReport, responses=_ERRORS, tags=["costs"])
    async def costs(
        who: Authenticated,
        group_by: Annotated[
            str | None, Query(alias="groupBy", description="team, user, model or adapter")
        ] = None,
        namespace: str | None = None,
        start: From = None,
        end: To = None,
    ) -> Response:
        """Spend of the runs completed in [from, to), summed per team, user, model or adapter."""
        return json_response(
            await service.costs_body(who, group_by=group_by, namespace=namespace, start=start, end=end)
        )

    @app.get("/v1/budgets", response_model=BudgetList, responses=_ERRORS, tags=["budgets"])
    async def list_budgets(who: Authenticated, namespace: str | None = None) -> BudgetList:
        """The Budgets of the namespaces the caller may read, with their spec and status."""
        return await service.list_budgets(who, namespace)

    @app.get("/v1/audit", response_model=AuditList, responses=_ERRORS, tags=["audit"])
    async def audit(
        who: Authenticated,
        namespace: str | None = None,
        uid: Annotated[str | None, Query(description="one run's rows")] = None,
        action: Annotated[
            str | None, Query(description="admit, deny, hold, settle, stop, archive or expire-artifacts")
        ] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> AuditList:
        """Audit log rows, oldest first, with their hashes (rows of other namespaces are left out, so
        the chain can be verified only whole, by `jesus audit verify`)."""
        return await service.audit(
            who, namespace=namespace, uid=uid, action=action, limit=limit, cursor=cursor
        )

    app.include_router(artifact_router(service))
    if dashboard is not None:
        app.include_router(dashboard_router(service, authenticator, dashboard))
        app.mount("/ui/static", static_files(), name="dashboard-static")
    if hot_routes:
        app.add_middleware(HotRoutes, service=service, authenticator=authenticator, refusals=REFUSALS)
    return app
