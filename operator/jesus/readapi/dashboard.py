"""The web dashboard, served by `jesus api` beside /v1: pages rendered on the server with Jinja
(autoescaped), a little JavaScript of its own, nothing fetched from elsewhere (docs/dashboard.md).

Every page asks the same `ReadService` the API does, as the same caller: in a cluster a person signs in
by pasting a token, which the dashboard keeps in an HttpOnly, SameSite=Strict cookie (Secure unless the
page was asked for on a loopback address) and presents as the bearer token of each request, so the
TokenReview and SubjectAccessReviews are the API's own and a namespace the person may not read looks
empty here too. Local mode needs no sign-in.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at definition time.
import hashlib
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from jesus.api.agentrun import AgentRunPhase
from jesus.kube.errors import KubeError
from jesus.logic.run_queries import QueryError
from jesus.readapi.access import (
    AccessUnavailableError,
    Authenticator,
    Caller,
    LocalAuthenticator,
    UnauthenticatedError,
)
from jesus.readapi.service import NotFoundError, ReadService
from jesus.readapi.views import budget_views, cost_chart, daily_limits, days_of, money, run_view
from jesus.records import StoreUnavailableError

logger = logging.getLogger(__name__)

COOKIE = "jesus_token"
MAX_TOKEN_CHARS = 3800
"""Browsers keep a cookie of up to 4096 bytes, name and attributes included."""
MAX_FORM_BYTES = 16 * 1024
TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~+/=-]+")
"""A bearer token's characters (RFC 6750): nothing a cookie would have to quote."""
WINDOWS = (7, 30, 90)
PHASES = tuple(p.value for p in AgentRunPhase if p.terminal)
ROOT = "/ui"
HERE = Path(__file__).parent
SECURITY_HEADERS = {
    # Only this server's own script and style; nothing inline, no frames, forms post only here.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Why a person was sent to the sign-in page: a fixed sentence per code, never text from the request.
REASONS = {
    "none": "Sign in to see the runs you may read.",
    "refused": "The API server no longer accepts your token (it may have expired). Sign in again.",
    "signed-out": "Signed out.",
}


@dataclass(frozen=True)
class DashboardSettings:
    """What the dashboard is configured with."""

    today: Callable[[], date]
    """The date the costs page ends on by default (injected: tests pin it)."""
    trace_url: str | None = None
    """A URL with `{traceId}` (a Jaeger UI's `https://…/trace/{traceId}`) for a run's trace link."""
    refresh_seconds: int = 5
    """How often the runs list asks for its newest page again; 0: never."""


class TraceUrlError(ValueError):
    """A trace URL template that cannot be used."""


def check_trace_url(template: str) -> str:
    """`template` if it is an http(s) URL with `{traceId}` in it."""
    if not template.startswith(("http://", "https://")) or "{traceId}" not in template:
        raise TraceUrlError(
            f"the trace URL template {template[:200]!r} must be an http:// or https:// URL with {{traceId}}"
        )
    return template


def session_header(request: Request) -> str | None:
    """The request's credentials: its Authorization header, else the dashboard's cookie as a bearer
    token (the read API's routes accept both, so a signed-in browser can download an artifact)."""
    header = request.headers.get("authorization")
    if header is not None:
        return header
    token = request.cookies.get(COOKIE)
    return f"Bearer {token}" if token else None


def _loopback(host: str | None) -> bool:
    if host is None or host == "localhost" or host.endswith(".localhost"):
        return host is not None
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _same_origin(request: Request) -> bool:
    """Whether a form post comes from a page of this server (a sign-in posted from another site would
    sign the person in as someone else). The browser's own Sec-Fetch-Site decides when it is sent;
    otherwise the Origin's host must be the request's (the scheme is left out: behind a proxy that ends
    TLS the server sees http where the browser has https)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return False
    return urlsplit(origin).netloc == request.headers.get("host")


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a dashboard path of this server, never another site."""
    if (
        value
        and value.startswith(ROOT + "/")
        and "\\" not in value
        and len(value) <= 2048
        and not any(ord(c) < 0x21 for c in value)
    ):
        return value
    return f"{ROOT}/runs"


def page_url(path: str, **params: Any) -> str:
    """`path` with the query parameters that have a value."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{path}?{query}" if query else path


def run_url(namespace: str, name: str, uid: str | None = None) -> str:
    """A run's page."""
    return page_url(f"{ROOT}/runs/{quote(namespace, safe='')}/{quote(name, safe='')}", uid=uid)


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(run_url=run_url, page_url=page_url, root=ROOT, phases=PHASES)
    environment.filters["money"] = money
    return environment


def _static_version() -> str:
    for folder in (HERE / "templates", HERE / "static"):
        if not folder.is_dir():  # a wheel built without its package data
            raise FileNotFoundError(
                f"the dashboard's files are missing: {folder} (the package data of jesus.readapi)"
            )
    digest = hashlib.sha256()
    for path in sorted((HERE / "static").iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


class Dashboard:
    """The pages, over a `ReadService`, for the callers an `Authenticator` names."""

    def __init__(
        self, service: ReadService, authenticator: Authenticator, settings: DashboardSettings
    ) -> None:
        self.service, self.authenticator, self.settings = service, authenticator, settings
        self.local = isinstance(authenticator, LocalAuthenticator)
        self.templates = _environment()
        self.templates.globals.update(static_version=_static_version(), local=self.local)

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.templates.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def error_page(self, status: int, title: str, message: str, who: Caller | None = None) -> HTMLResponse:
        return self.render("error.html", status, title=title, message=message, who=who)

    async def page(
        self, request: Request, answer: Callable[[Caller], Awaitable[Response]], *, fragment: bool = False
    ) -> Response:
        """`answer` for the request's caller; a caller without a usable token goes to the sign-in page
        (a fragment gets a bare 401), and every refusal of the API is a page that says it."""
        try:
            who = await self.authenticator.authenticate(session_header(request))
        except UnauthenticatedError:
            if fragment:
                return PlainTextResponse("sign in again", status_code=401, headers=SECURITY_HEADERS)
            had_cookie = COOKIE in request.cookies
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            response = RedirectResponse(
                page_url(
                    f"{ROOT}/sign-in", next=_safe_next(target), reason="refused" if had_cookie else "none"
                ),
                status_code=303,
                headers=SECURITY_HEADERS,
            )
            if had_cookie:
                self.forget(request, response)
            return response
        except AccessUnavailableError as exc:
            logger.warning("Refused a page: access could not be reviewed: %s", exc)
            return self.error_page(503, "Unavailable", f"Access cannot be checked now ({exc}).")
        try:
            return await answer(who)
        except QueryError as exc:
            return self.error_page(400, "Bad parameter", f"{exc.parameter}: {exc.message}", who)
        except NotFoundError as exc:
            return self.error_page(404, "Not found", str(exc), who)
        except AccessUnavailableError as exc:
            logger.warning("Refused a page: access could not be reviewed: %s", exc)
            return self.error_page(503, "Unavailable", f"Access cannot be checked now ({exc}).", who)
        except StoreUnavailableError as exc:
            logger.warning("Failed a page: %s", exc)
            return self.error_page(503, "Unavailable", str(exc), who)

    @staticmethod
    def cookie_secure(request: Request) -> bool:
        """Secure unless the browser asked a loopback address (plain http there is fine)."""
        return not _loopback(request.url.hostname)

    def remember(self, request: Request, response: Response, token: str) -> None:
        response.set_cookie(
            COOKIE,
            token,
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.cookie_secure(request),
        )

    def forget(self, request: Request, response: Response) -> None:
        response.delete_cookie(
            COOKIE, path="/", httponly=True, samesite="strict", secure=self.cookie_secure(request)
        )

    # --- pages ------------------------------------------------------------------------------------

    async def runs(self, request: Request) -> Response:
        query = request.query_params
        fragment = query.get("part") == "rows"
        filters = {key: query.get(key, "")[:300] for key in ("namespace", "phase", "team", "model", "search")}
        cursor = query.get("cursor") or None

        async def answer(who: Caller) -> Response:
            found = await self.service.list_runs(
                who,
                namespace=filters["namespace"] or None,
                phase=filters["phase"] or None,
                team=filters["team"] or None,
                model=filters["model"] or None,
                search=filters["search"] or None,
                cursor=cursor,
                limit=query.get("limit") or None,
            )
            context: dict[str, Any] = {
                "who": who,
                "runs": found.items,
                "filters": filters,
                "next_url": page_url(f"{ROOT}/runs", **filters, cursor=found.next_cursor)
                if found.next_cursor
                else None,
                "first_url": page_url(f"{ROOT}/runs", **filters) if cursor else None,
                "live": self.settings.refresh_seconds if cursor is None else 0,
            }
            return self.render("_rows.html" if fragment else "runs.html", **context)

        return await self.page(request, answer, fragment=fragment)

    async def run(self, request: Request, namespace: str, name: str) -> Response:
        uid = request.query_params.get("uid") or None

        async def answer(who: Caller) -> Response:
            if len(namespace) > 63 or len(name) > 253 or (uid is not None and len(uid) > 64):
                raise NotFoundError(f"no archived AgentRun {namespace[:63]}/{name[:253]}")
            run = await self.service.get_run(who, namespace, name, uid)
            view = run_view(
                run.record,
                namespace=run.namespace,
                name=run.name,
                uid=run.uid,
                trace_template=self.settings.trace_url,
            )
            json_url = page_url(
                f"/v1/runs/{quote(run.namespace, safe='')}/{quote(run.name, safe='')}", uid=run.uid
            )
            return self.render("run.html", who=who, run=run, view=view, json_url=json_url)

        return await self.page(request, answer)

    async def costs(self, request: Request) -> Response:
        query = request.query_params
        group_by = query.get("groupBy") or "team"
        namespace = query.get("namespace", "")[:300]
        days_text = query.get("days") or "30"
        end_text = query.get("to") or ""

        async def answer(who: Caller) -> Response:
            if days_text not in {str(d) for d in WINDOWS}:
                raise QueryError("days", f"{days_text[:20]!r} is not one of {', '.join(map(str, WINDOWS))}")
            days = int(days_text)
            try:  # `to` is the last day shown (UTC); the window ends at the next midnight
                last_day = date.fromisoformat(end_text[:10]) if end_text else self.settings.today()
                end = last_day + timedelta(days=1)
            except (ValueError, OverflowError):
                raise QueryError("to", f"{end_text[:20]!r} is not a date (YYYY-MM-DD)") from None
            first = end - timedelta(days=days)
            window = {"start": f"{first.isoformat()}T00:00:00Z", "end": f"{end.isoformat()}T00:00:00Z"}
            asked = namespace or None
            points = await self.service.cost_series(who, group_by=group_by, namespace=asked, **window)
            report = await self.service.costs(who, group_by=group_by, namespace=asked, **window)
            try:
                budgets = (await self.service.list_budgets(who, asked)).items
                budget_problem = ""
            except KubeError as exc:  # the spend is the archive's: show it without the Budgets
                logger.warning("Failed to list the Budgets for a page: %s", exc)
                budgets, budget_problem = [], f"The Budgets cannot be listed now: {exc}"
            keys = [g.key for g in report.groups]
            chart = cost_chart(points, days_of(first, days), daily_limits(budgets, group_by, keys))
            return self.render(
                "costs.html",
                who=who,
                chart=chart,
                report=report,
                budgets=budget_views(budgets),
                budget_problem=budget_problem,
                group_by=group_by,
                namespace=namespace,
                days=days,
                windows=WINDOWS,
                first=first.isoformat(),
                last=last_day.isoformat(),
                to=last_day.isoformat(),
            )

        return await self.page(request, answer)

    async def sign_in_form(self, request: Request) -> Response:
        reason = REASONS.get(request.query_params.get("reason") or "", "")
        return self.render(
            "sign_in.html",
            who=None,
            reason=reason,
            problem="",
            next=_safe_next(request.query_params.get("next")),
        )

    async def sign_in(self, request: Request) -> Response:
        if not _same_origin(request):
            return self.error_page(403, "Refused", "A sign-in must be posted from this dashboard's own page.")
        body = await _small_body(request)
        if body is None:
            return self.error_page(413, "Too large", f"A sign-in form is at most {MAX_FORM_BYTES} bytes.")
        form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
        token = (form.get("token") or [""])[0].strip()
        destination = _safe_next((form.get("next") or [""])[0])

        def again(problem: str, status: int) -> HTMLResponse:
            return self.render("sign_in.html", status, who=None, reason="", problem=problem, next=destination)

        if self.local:
            return RedirectResponse(destination, status_code=303, headers=SECURITY_HEADERS)
        if not token:
            return again("Paste a token.", 400)
        if len(token) > MAX_TOKEN_CHARS:
            return again(
                f"That token is {len(token)} characters; a browser keeps at most {MAX_TOKEN_CHARS} in a "
                "cookie.",
                400,
            )
        if not TOKEN_CHARACTERS.fullmatch(token):
            return again("That is not a bearer token (letters, digits and -._~+/= only).", 400)
        try:
            who = await self.authenticator.authenticate(f"Bearer {token}")
        except UnauthenticatedError as exc:
            return again(f"Not signed in: {exc}.", 401)
        except AccessUnavailableError as exc:
            return again(f"The token cannot be checked now ({exc}).", 503)
        logger.info("Signed in to the dashboard user=%s", who.username)
        response = RedirectResponse(destination, status_code=303, headers=SECURITY_HEADERS)
        self.remember(request, response, token)
        return response

    async def sign_out(self, request: Request) -> Response:
        if not _same_origin(request):
            return self.error_page(
                403, "Refused", "A sign-out must be posted from this dashboard's own page."
            )
        response = RedirectResponse(
            page_url(f"{ROOT}/sign-in", reason="signed-out"), status_code=303, headers=SECURITY_HEADERS
        )
        self.forget(request, response)
        return response


async def _small_body(request: Request) -> bytes | None:
    """The request's body, or None past MAX_FORM_BYTES (read no further)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    return body


def dashboard_router(
    service: ReadService, authenticator: Authenticator, settings: DashboardSettings
) -> APIRouter:
    """The dashboard's routes (under /ui, with / sent there), left out of the OpenAPI document."""
    dashboard = Dashboard(service, authenticator, settings)
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def home() -> Response:
        return RedirectResponse(f"{ROOT}/runs", status_code=303)

    @router.get(ROOT)
    async def ui_home() -> Response:
        return RedirectResponse(f"{ROOT}/runs", status_code=303)

    @router.get(f"{ROOT}/runs")
    async def runs(request: Request) -> Response:
        return await dashboard.runs(request)

    @router.get(ROOT + "/runs/{namespace}/{name}")
    async def run(request: Request, namespace: str, name: str) -> Response:
        return await dashboard.run(request, namespace, name)

    @router.get(f"{ROOT}/costs")
    async def costs(request: Request) -> Response:
        return await dashboard.costs(request)

    @router.get(f"{ROOT}/sign-in")
    async def sign_in_form(request: Request) -> Response:
        return await dashboard.sign_in_form(request)

    @router.post(f"{ROOT}/sign-in")
    async def sign_in(request: Request) -> Response:
        return await dashboard.sign_in(request)

    @router.post(f"{ROOT}/sign-out")
    async def sign_out(request: Request) -> Response:
        return await dashboard.sign_out(request)

    return router


def static_files() -> StaticFiles:
    """The dashboard's stylesheet and script (served at /ui/static)."""
    return StaticFiles(directory=HERE / "static")
