"""The three routes a dashboard asks most (a page of runs, a run, a cost sum) answered in front of
FastAPI's routing, with the same answers.

FastAPI's dependency injection, parameter parsing and response handling cost about 0.2 ms of CPU a
request, as much as a quick read of the archive (bench_read_api). A GET of `/v1/runs`,
`/v1/runs/NS/NAME` or `/v1/costs` whose parameters are plainly well formed is answered here: the same
authentication (`session_header`, the authenticator), the same service calls, the same refusals (the
`REFUSALS` table the app's exception handlers use). Anything else (another method or path, a `limit`
that is not a plain number, a path or `uid` longer than the routes allow) goes on to FastAPI, which
answers it, 400s naming the parameter included; so does every refusal FastAPI itself would write. The
routes stay declared in FastAPI for /openapi.json; a test holds both paths' answers equal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from jesus.readapi.access import Authenticator, Caller
from jesus.readapi.dashboard import session_header
from jesus.readapi.service import ReadService

Refusal = Callable[[Exception], JSONResponse]

MAX_NAMESPACE = 63
MAX_NAME = 253
MAX_UID = 64
LIST_PARAMETERS = {
    "namespace": "namespace",
    "team": "team",
    "user": "user",
    "phase": "phase",
    "model": "model",
    "from": "start",
    "to": "end",
    "limit": "limit",
    "cursor": "cursor",
}
COST_PARAMETERS = {"groupBy": "group_by", "namespace": "namespace", "from": "start", "to": "end"}
_RUNS = "/v1/runs"
_RUN_PREFIX = "/v1/runs/"


class HotRoutes:
    """ASGI middleware: the hot GETs answered here, everything else by `app`."""

    def __init__(
        self,
        app: ASGIApp,
        service: ReadService,
        authenticator: Authenticator,
        refusals: dict[type[Exception], Refusal],
    ) -> None:
        self.app, self.service, self.authenticator, self.refusals = app, service, authenticator, refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = self._answer_for(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        if answer is None:
            await self.app(scope, receive, send)
            return
        try:
            who = await self.authenticator.authenticate(session_header(Request(scope)))
            body = await answer(who)
        except tuple(self.refusals) as exc:
            response: Response = self._refusal(exc)
        else:
            response = Response(body, media_type="application/json")
        await response(scope, receive, send)

    def _refusal(self, exc: Exception) -> JSONResponse:
        """The refusal of `exc`'s class or of the nearest class above it (as Starlette looks one up)."""
        for kind in type(exc).__mro__:
            if kind in self.refusals:
                return self.refusals[kind](exc)
        raise exc  # unreachable: only the refusals' classes are caught

    def _answer_for(self, scope: Scope) -> Callable[[Caller], Awaitable[bytes]] | None:
        """What answers this request, or None for FastAPI to answer it."""
        path: str = scope["path"]
        if path == _RUNS:
            asked = _parameters(scope, LIST_PARAMETERS)
            if asked is None or not _plain_number(asked.get("limit")):
                return None
            if "limit" in asked:
                asked["limit"] = int(asked["limit"])  # as FastAPI gives it to the route
            return lambda who: self.service.list_runs_body(who, **asked)
        if path == "/v1/costs":
            cost_asked = _parameters(scope, COST_PARAMETERS)
            if cost_asked is None:
                return None
            group_by = cost_asked.pop("group_by", None)
            return lambda who: self.service.costs_body(who, group_by=group_by, **cost_asked)
        if path.startswith(_RUN_PREFIX):
            namespace, _, name = path[len(_RUN_PREFIX) :].partition("/")
            run_asked = _parameters(scope, {"uid": "uid"})
            if (
                run_asked is None
                or not 0 < len(namespace) <= MAX_NAMESPACE
                or not 0 < len(name) <= MAX_NAME
                or "/" in name
                or len(run_asked.get("uid") or "") > MAX_UID
            ):
                return None
            uid = run_asked.get("uid")
            return lambda who: self.service.get_run_body(who, namespace, name, uid)
        return None


def _parameters(scope: Scope, known: dict[str, str]) -> dict[str, Any] | None:
    """The known query parameters by argument name (the last of a repeated one, as FastAPI takes it);
    None when the query string is not plain UTF-8 text."""
    try:
        text = scope["query_string"].decode("latin-1")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    return {known[key]: value for key, value in pairs if key in known}


def _plain_number(value: str | None) -> bool:
    """A `limit` FastAPI reads as this very number (absent, or 1 to 18 ASCII digits)."""
    return value is None or (0 < len(value) <= 18 and value.isascii() and value.isdigit())
