"""The read API's routes: FastAPI over `ArchiveReader`, behind `Authenticator` and `NamespaceAccess`.

Read-only and versioned under /v1. Every query parameter is checked by `jesus.logic.run_queries`; a bad
one is a 400 whose body names it. A namespace the caller may not read looks exactly like one without
runs (an empty list, a 404 for a run), so the API does not tell a caller what exists where they cannot
look. /healthz and /openapi.json need no token.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name the
# dependencies made inside create_app, at definition time.
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer

from jesus.api.objects import JsonObject
from jesus.logic.run_queries import (
    CursorSigner,
    QueryError,
    parse_audit_filter,
    parse_group_by,
    parse_limit,
    parse_run_filter,
    parse_time_range,
)
from jesus.readapi.access import (
    AccessUnavailableError,
    Authenticator,
    Caller,
    NamespaceAccess,
    UnauthenticatedError,
)
from jesus.readapi.models import (
    AuditItem,
    AuditList,
    BudgetItem,
    BudgetList,
    Call,
    CallList,
    CostGroup,
    CostReport,
    ErrorBody,
    Run,
    RunDetail,
    RunList,
)
from jesus.records import StoreUnavailableError
from jesus.records.reader import ArchiveReader

logger = logging.getLogger(__name__)

API_TITLE = "Jesus read API"
API_VERSION = "v1"
BudgetSource = Callable[[], Awaitable[list[JsonObject]]]
"""Every Budget object (the cluster's, or the spec files' in local mode)."""

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
    read whole, so every malformed form gets its own 401)."""
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.authenticate(request.headers.get("authorization"))


Authenticated = Annotated[Caller, Depends(_caller)]
Namespace = Annotated[str, Path(max_length=63, description="the run's namespace")]
Name = Annotated[str, Path(max_length=253, description="the run's name")]
Limit = Annotated[int | None, Query(description="page size, 1 to 500 (default 50)")]
Cursor = Annotated[str | None, Query(description="the `nextCursor` of the previous page")]
From = Annotated[str | None, Query(alias="from", description="completed at or after (RFC 3339)")]
To = Annotated[str | None, Query(alias="to", description="completed before (RFC 3339)")]


class NotFoundError(Exception):
    """The thing asked for is not there, or not for this caller (the same answer)."""


def error(status: int, code: str, message: str, parameter: str | None = None) -> JSONResponse:
    """The error body every refusal has."""
    detail: dict[str, Any] = {"code": code, "message": message}
    if parameter is not None:
        detail["parameter"] = parameter
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


def create_app(
    reader: ArchiveReader,
    authenticator: Authenticator,
    access: NamespaceAccess,
    signer: CursorSigner,
    budgets: BudgetSource,
) -> FastAPI:
    """The ASGI application of the read API."""
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

    @app.exception_handler(QueryError)
    async def _bad_query(_request: Request, exc: QueryError) -> JSONResponse:
        return error(400, "BadParameter", exc.message, exc.parameter)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        location = [str(part) for part in first.get("loc", ()) if part not in ("query", "path")]
        parameter = location[0] if location else "request"
        return error(400, "BadParameter", str(first.get("msg", "is not valid")), parameter)

    @app.exception_handler(UnauthenticatedError)
    async def _unauthenticated(_request: Request, exc: UnauthenticatedError) -> JSONResponse:
        return error(401, "Unauthenticated", str(exc))

    @app.exception_handler(AccessUnavailableError)
    async def _no_reviews(_request: Request, exc: AccessUnavailableError) -> JSONResponse:
        logger.warning("Refused a request: access could not be reviewed: %s", exc)
        return error(503, "Unavailable", f"access cannot be checked now ({exc}); refused")

    @app.exception_handler(StoreUnavailableError)
    async def _no_archive(_request: Request, exc: StoreUnavailableError) -> JSONResponse:
        logger.warning("Failed a request: %s", exc)
        return error(503, "Unavailable", str(exc))

    @app.exception_handler(NotFoundError)
    async def _not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return error(404, "NotFound", str(exc))

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
    ) -> RunList:
        """Archived runs, newest first (by completion time), one page at a time."""
        question = parse_run_filter(
            namespace=namespace, team=team, user=user, phase=phase, model=model, start=start, end=end
        )
        size = parse_limit(limit)
        after = signer.read("runs", question, cursor)
        if after is not None and (len(after) != 2 or not all(isinstance(x, str | None) for x in after)):
            raise QueryError("cursor", "holds no run position")
        visible = await access.visible(who) if question.namespace is None else None
        if question.namespace is not None and not await access.may_read(who, question.namespace):
            return RunList(items=[], next_cursor=None)
        found = await reader.list_runs(question, visible, after, size + 1)
        page = found[:size]
        more = signer.make("runs", question, page[-1].position) if len(found) > size else None
        return RunList(items=[Run.of(r) for r in page], next_cursor=more)

    async def found_run(who: Caller, namespace: str, name: str, uid: str | None) -> tuple[Any, Any]:
        if await access.may_read(who, namespace):
            run = await reader.get_run(namespace, name, None, uid)
            if run is not None:
                return run
        raise NotFoundError(f"no archived AgentRun {namespace}/{name}" + (f" with uid {uid}" if uid else ""))

    @app.get(
        "/v1/runs/{namespace}/{name}",
        response_model=RunDetail,
        responses={**_ERRORS, **_NOT_FOUND},
        tags=["runs"],
    )
    async def get_run(
        who: Authenticated,
        namespace: Namespace,
        name: Name,
        uid: Annotated[
            str | None, Query(max_length=64, description="one run of several of this name")
        ] = None,
    ) -> RunDetail:
        """One archived run with its whole record (the newest of that name unless `uid` is given)."""
        summary, record = await found_run(who, namespace, name, uid)
        return RunDetail(**Run.of(summary).model_dump(), record=record)

    @app.get(
        "/v1/runs/{namespace}/{name}/calls",
        response_model=CallList,
        responses={**_ERRORS, **_NOT_FOUND},
        tags=["runs"],
    )
    async def get_calls(
        who: Authenticated,
        namespace: Namespace,
        name: Name,
        uid: Annotated[str | None, Query(max_length=64)] = None,
    ) -> CallList:
        """The model calls of an archived run, in order, with their fallbacks."""
        summary, _record = await found_run(who, namespace, name, uid)
        calls = await reader.calls(summary.uid)
        return CallList(namespace=namespace, name=name, uid=summary.uid, items=[Call.of(c) for c in calls])

    @app.get("/v1/costs", response_model=CostReport, responses=_ERRORS, tags=["costs"])
    async def costs(
        who: Authenticated,
        group_by: Annotated[
            str | None, Query(alias="groupBy", description="team, user, model or adapter")
        ] = None,
        namespace: str | None = None,
        start: From = None,
        end: To = None,
    ) -> CostReport:
        """Spend of the runs completed in [from, to), summed per team, user, model or adapter."""
        grouping = parse_group_by(group_by)
        window = parse_time_range(start, end)
        asked = parse_run_filter(namespace=namespace).namespace
        if asked is not None:
            visible: frozenset[str] | None = (
                frozenset({asked}) if await access.may_read(who, asked) else frozenset()
            )
        else:
            visible = await access.visible(who)
        lines = await reader.costs(grouping, window, visible)
        return CostReport(
            group_by=grouping.value,
            from_=window.start,
            to=window.end,
            groups=[CostGroup.of(line) for line in lines],
            total_micros=sum(line.cost_micros for line in lines),
        )

    @app.get("/v1/budgets", response_model=BudgetList, responses=_ERRORS, tags=["budgets"])
    async def list_budgets(who: Authenticated, namespace: str | None = None) -> BudgetList:
        """The Budgets of the namespaces the caller may read, with their spec and status."""
        asked = parse_run_filter(namespace=namespace).namespace
        items = []
        for budget in await budgets():
            metadata = budget.get("metadata") or {}
            where = str(metadata.get("namespace") or "")
            if asked is not None and where != asked:
                continue
            if not await access.may_read(who, where):
                continue
            items.append(
                BudgetItem(
                    namespace=where,
                    name=str(metadata.get("name") or ""),
                    spec=budget.get("spec") or {},
                    status=budget.get("status") or {},
                )
            )
        items.sort(key=lambda b: (b.namespace, b.name))
        return BudgetList(items=items)

    @app.get("/v1/audit", response_model=AuditList, responses=_ERRORS, tags=["audit"])
    async def audit(
        who: Authenticated,
        namespace: str | None = None,
        uid: Annotated[str | None, Query(description="one run's rows")] = None,
        action: Annotated[str | None, Query(description="admit, deny, hold, settle, stop or archive")] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> AuditList:
        """Audit log rows, oldest first, with their hashes (rows of other namespaces are left out, so
        the chain can be verified only whole, by `jesus audit verify`)."""
        question = parse_audit_filter(namespace=namespace, run_uid=uid, action=action)
        size = parse_limit(limit)
        after = signer.read("audit", question, cursor)
        if after is not None and (len(after) != 1 or type(after[0]) is not int):
            raise QueryError("cursor", "holds no audit row position")
        if question.namespace is not None:
            ok = await access.may_read(who, question.namespace)
            visible: frozenset[str] | None = frozenset({question.namespace}) if ok else frozenset()
        else:
            visible = await access.visible(who)
        found = await reader.audit(question, visible, after[0] if after else None, size + 1)
        page = found[:size]
        more = signer.make("audit", question, [page[-1].id]) if len(found) > size else None
        return AuditList(items=[AuditItem.of(e) for e in page], next_cursor=more)

    return app
