"""The dashboard's pages over HTTP (ASGI, in process) on an SQLite archive, with a fake API server for
the TokenReviews and SubjectAccessReviews: who sees what, signing in and out, the cookie's attributes,
every refusal as a page, and hostile or careless values from the archive, the Budgets and the request."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.builders.archived_runs import archive, archived_run, standard_runs

from jesus.api.objects import JsonObject
from jesus.kube import KubeError
from jesus.logic.run_queries import CursorSigner
from jesus.readapi.access import LocalAuthenticator, NamespaceAccess, TokenReviewAuthenticator
from jesus.readapi.app import create_app
from jesus.readapi.dashboard import COOKIE, DashboardSettings, check_trace_url
from jesus.readapi.service import ReadService
from jesus.readapi.views import (
    CHART_LEFT,
    CHART_WIDTH,
    LimitLine,
    cost_chart,
    days_of,
    run_view,
    tick_step,
)
from jesus.records import RecordStore
from jesus.records.reader import ArchiveReader, CostPoint

KEY = b"k" * 32
TRACE = "https://jaeger.example/trace/{traceId}"
HOSTILE = '<script>alert("x")</script>"><img src=x onerror=alert(1)>'
SAME_ORIGIN = {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeApiServer:
    """TokenReview: the tokens it knows; SubjectAccessReview: list agentruns where granted."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {"viewer-a": "viewer-a", "admin": "admin"}
        self.grants: dict[str, set[str]] = {"viewer-a": {"team-a"}, "admin": {""}}
        self.token_reviews = 0

    async def review_token(self, token: str, audiences: list[str]) -> JsonObject:
        self.token_reviews += 1
        if token not in self.tokens:
            return {"authenticated": False, "error": "token has expired"}
        return {"authenticated": True, "user": {"username": self.tokens[token], "groups": []}}

    async def review_access(self, user: JsonObject, attributes: JsonObject) -> JsonObject:
        return {"allowed": attributes.get("namespace", "") in self.grants.get(user["username"], set())}


def budgets_of(*extra: JsonObject) -> list[JsonObject]:
    return [
        {
            "metadata": {"namespace": "team-a", "name": "daily"},
            "spec": {"scope": {"team": "team-a"}, "period": "Daily", "limit": "0.01"},
            "status": {"spentMicros": 7500, "reservedMicros": 500},
        },
        {
            "metadata": {"namespace": "team-b", "name": "secret-budget"},
            "spec": {"scope": {"team": "team-b"}, "period": "Monthly", "limit": "20.00"},
            "status": {},
        },
        *extra,
    ]


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'archive.db'}"


@pytest.fixture
def server() -> FakeApiServer:
    return FakeApiServer()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def budgets() -> list[JsonObject]:
    return budgets_of()


def hostile_run() -> tuple[Any, dict[str, Any]]:
    """A run whose every pod- or user-written text is an attack or a huge value."""
    facts, obj = archived_run("hostile", completion="2026-11-30T10:07:00Z", calls=1)
    status = obj["status"]
    status["message"] = HOSTILE + "m" * 4000
    status["policy"] = {"allowed": False, "reasons": [HOSTILE, "r" * 1024], "warnings": [HOSTILE]}
    status["attempts"][0]["message"] = HOSTILE
    status["calls"][0]["model"] = HOSTILE
    status["calls"][0]["fallbacks"] = [{"adapter": "primary", "errorClass": HOSTILE[:64]}]
    status["artifacts"] = [{"name": '../"><script>x.json', "uri": "s3://b/" + HOSTILE, "sizeBytes": 3}]
    status["conditions"][0]["message"] = HOSTILE
    obj["spec"]["owner"]["user"] = HOSTILE
    return facts, obj


async def make_client(
    reader: ArchiveReader, authenticator: Any, access: NamespaceAccess, budgets: list[JsonObject], base: str
) -> AsyncIterator[httpx.AsyncClient]:
    async def budget_source() -> list[JsonObject]:
        return budgets

    app = create_app(
        ReadService(reader, access, CursorSigner(KEY), budget_source),
        authenticator,
        DashboardSettings(today=lambda: date(2026, 11, 30), trace_url=TRACE, refresh_seconds=5),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=base) as http:
        yield http


@pytest.fixture
async def filled(store: RecordStore) -> RecordStore:
    await archive(store, *standard_runs(), hostile_run())
    return store


@pytest.fixture
async def reader(filled: RecordStore) -> AsyncIterator[ArchiveReader]:
    archive_reader = ArchiveReader(filled.url)
    yield archive_reader
    await archive_reader.close()


@pytest.fixture
async def client(
    reader: ArchiveReader, server: FakeApiServer, clock: Clock, budgets: list[JsonObject]
) -> AsyncIterator[httpx.AsyncClient]:
    """A dashboard reached on a loopback address (cookies without Secure)."""
    access = NamespaceAccess(server, reader.namespaces, clock=clock, cache_seconds=10)
    authenticator = TokenReviewAuthenticator(server, clock=clock, cache_seconds=10)
    async for http in make_client(reader, authenticator, access, budgets, "http://127.0.0.1"):
        yield http


def signed_in(token: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={token}"}


async def page(client: httpx.AsyncClient, path: str, token: str | None = "viewer-a") -> httpx.Response:
    return await client.get(path, headers=signed_in(token) if token else {})


def run_names(html: str) -> list[str]:
    return re.findall(r'<tr class="run" data-name="([^"]+)"', html)


async def test_a_viewer_of_team_a_sees_only_team_as_runs_costs_and_budgets(client: httpx.AsyncClient) -> None:
    listed = await page(client, "/ui/runs")
    assert listed.status_code == 200
    assert run_names(listed.text) == ["hostile", "a5", "a4", "a3", "a2", "a1"]
    assert run_names((await page(client, "/ui/runs", "admin")).text)[:3] == ["hostile", "b2", "a5"]
    # Another team's namespace is empty, its run is "not found" exactly like a missing one.
    assert run_names((await page(client, "/ui/runs?namespace=team-b")).text) == []
    hidden, missing = await page(client, "/ui/runs/team-b/b1"), await page(client, "/ui/runs/team-a/nope")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text.replace("team-b/b1", "X") == missing.text.replace("team-a/nope", "X")
    costs = await page(client, "/ui/costs")
    assert costs.status_code == 200
    assert "team-a/daily" in costs.text and "secret-budget" not in costs.text and "team-b" not in costs.text
    assert "team-b" in (await page(client, "/ui/costs", "admin")).text


async def test_a_runs_page_shows_its_cost_fallbacks_reasons_holds_artifacts_and_trace(
    client: httpx.AsyncClient,
) -> None:
    response = await page(client, "/ui/runs/team-a/a3")
    assert response.status_code == 200
    html = response.text
    assert '<dd id="cost">0.0045</dd>' in html
    assert "3 calls, 1 fallback" in html
    assert '<span class="fallback">primary (RateLimited)</span>' in html
    assert '<td>team-a/team</td><td class="num">0.50</td><td>yes</td>' in html  # the budget hold
    assert "no data classification" in html  # the policy's warning
    assert re.search(r'href="/v1/runs/team-a/a3/artifacts/result\.json\?uid=[0-9a-f-]{36}" download', html)
    assert 'href="https://jaeger.example/trace/0af7651916cd43dd8448eb211c80319c"' in html
    assert response.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")
    assert response.headers["cache-control"] == "no-store"


async def test_hostile_text_from_the_archive_is_escaped_everywhere(client: httpx.AsyncClient) -> None:
    for path in ("/ui/runs", "/ui/runs/team-a/hostile", "/ui/runs?part=rows", "/ui/costs?groupBy=user"):
        html = (await page(client, path)).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert html.count("<script") == (0 if "part=rows" in path else 1), path  # our own script only
    html = (await page(client, "/ui/runs/team-a/hostile")).text
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    )
    assert "<strong>denied</strong>" in html
    # A huge message is cut, and says so; a path-like artifact name stays one escaped path segment.
    assert "m" * 1900 in html and "more characters)" in html and "m" * 2000 not in html
    assert "/artifacts/..%2F%22%3E%3Cscript%3Ex.json?uid=" in html


async def test_hostile_and_careless_budgets_are_shown_as_dashes_not_errors(
    client: httpx.AsyncClient, budgets: list[JsonObject]
) -> None:
    budgets.append(
        {
            "metadata": {"namespace": "team-a", "name": HOSTILE},
            "spec": {"scope": {"team": HOSTILE}, "period": ["Daily"], "limit": "lots"},
            "status": {"spentMicros": "a lot", "reservedMicros": True},
        }
    )
    response = await page(client, "/ui/costs")
    assert response.status_code == 200
    assert "<script>alert" not in response.text
    assert "team=&lt;script&gt;" in response.text


async def test_without_a_cookie_a_page_sends_to_sign_in_and_a_fragment_is_a_401(
    client: httpx.AsyncClient,
) -> None:
    response = await page(client, "/ui/runs?team=team-a", None)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/sign-in?next=%2Fui%2Fruns%3Fteam%3Dteam-a&reason=none"
    assert "set-cookie" not in response.headers
    assert (await page(client, "/ui/runs?part=rows", None)).status_code == 401
    form = await client.get(response.headers["location"])
    assert form.status_code == 200
    assert 'name="next" value="/ui/runs?team=team-a"' in form.text
    assert "Sign in to see the runs you may read." in form.text


async def test_signing_in_sets_an_httponly_strict_cookie_that_pages_and_the_api_accept(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/ui/sign-in", data={"token": " viewer-a\n", "next": "/ui/costs"}, headers=SAME_ORIGIN
    )
    assert response.status_code == 303 and response.headers["location"] == "/ui/costs"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=viewer-a;")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # a loopback address: plain http
    # The cookie is a bearer token for the API too (an artifact's download link follows it).
    api = await client.get("/v1/runs", headers=signed_in("viewer-a"))
    assert [r["name"] for r in api.json()["items"]] == ["hostile", "a5", "a4", "a3", "a2", "a1"]
    out = await client.post("/ui/sign-out", headers={**SAME_ORIGIN, **signed_in("viewer-a")})
    assert out.status_code == 303 and out.headers["location"] == "/ui/sign-in?reason=signed-out"
    assert out.headers["set-cookie"].startswith(f'{COOKIE}=""; ') and "Max-Age=0" in out.headers["set-cookie"]


async def test_the_cookie_is_secure_on_any_other_address(
    reader: ArchiveReader, server: FakeApiServer, clock: Clock, budgets: list[JsonObject]
) -> None:
    access = NamespaceAccess(server, reader.namespaces, clock=clock)
    authenticator = TokenReviewAuthenticator(server, clock=clock)
    async for http in make_client(reader, authenticator, access, budgets, "https://dash.example"):
        response = await http.post(
            "/ui/sign-in",
            data={"token": "viewer-a"},
            headers={"Origin": "https://dash.example", "Sec-Fetch-Site": "same-origin"},
        )
        assert response.status_code == 303 and response.headers["location"] == "/ui/runs"
        assert "Secure" in response.headers["set-cookie"]


@pytest.mark.parametrize(
    ("form", "headers", "status", "says"),
    [
        ({"token": "viewer-a"}, {"Origin": "https://evil.example"}, 403, "posted from this dashboard"),
        ({"token": "viewer-a"}, {"Sec-Fetch-Site": "cross-site"}, 403, "posted from this dashboard"),
        ({"token": "viewer-a"}, {}, 403, "posted from this dashboard"),  # no origin at all
        ({"token": "viewer-a"}, {"Origin": "null"}, 403, "posted from this dashboard"),
        (
            {"token": "viewer-a"},
            {**SAME_ORIGIN, "Sec-Fetch-Site": "same-site"},
            403,
            "posted from this dashboard",
        ),
        ({"token": "forged"}, SAME_ORIGIN, 401, "does not authenticate this token: token has expired"),
        ({"token": ""}, SAME_ORIGIN, 400, "Paste a token"),
        ({"token": "a b;c=<script>"}, SAME_ORIGIN, 400, "not a bearer token"),
        ({"token": "x" * 5000}, SAME_ORIGIN, 400, "That token is 5000 characters"),
        ({"token": "x" * 20000}, SAME_ORIGIN, 413, "at most 16384 bytes"),
    ],
)
async def test_a_sign_in_that_cannot_be_right_is_refused_without_a_cookie(
    client: httpx.AsyncClient, form: dict[str, str], headers: dict[str, str], status: int, says: str
) -> None:
    response = await client.post("/ui/sign-in", data=form, headers=headers)
    assert response.status_code == status
    assert says in response.text
    assert "set-cookie" not in response.headers
    assert "<script>" not in response.text.replace('<script src="/ui/static/dashboard.js', "")


async def test_a_sign_in_through_a_proxy_that_ends_tls_is_same_origin(client: httpx.AsyncClient) -> None:
    # The browser says https, the server sees http: the host decides.
    response = await client.post(
        "/ui/sign-in", data={"token": "viewer-a"}, headers={"Origin": "https://127.0.0.1"}
    )
    assert response.status_code == 303 and COOKIE in response.headers["set-cookie"]


@pytest.mark.parametrize(
    "next_page", ["//evil.example/ui/runs", "https://evil.example/", "/ui/../evil", "/v1/runs", "/ui\\x"]
)
async def test_signing_in_never_sends_to_another_site(client: httpx.AsyncClient, next_page: str) -> None:
    response = await client.post(
        "/ui/sign-in", data={"token": "viewer-a", "next": next_page}, headers=SAME_ORIGIN
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert location == "/ui/runs" or (location == next_page and next_page.startswith("/ui/")), location
    assert not location.startswith("//")


async def test_a_garbage_or_expired_cookie_sends_to_sign_in_again_and_is_dropped(
    client: httpx.AsyncClient, server: FakeApiServer, clock: Clock
) -> None:
    for garbage in ("%00%ff", "x" * 9000, '"quoted"', "é"):
        response = await client.get("/ui/runs", headers={b"Cookie": f"{COOKIE}={garbage}".encode()})
        assert response.status_code == 303, garbage
        assert response.headers["location"].endswith("reason=refused")
        assert "Max-Age=0" in response.headers["set-cookie"]
    assert (await page(client, "/ui/runs")).status_code == 200
    # The token expires: once the cached review has run out, the next page asks again and is refused.
    del server.tokens["viewer-a"]
    assert (await page(client, "/ui/runs")).status_code == 200  # still cached
    clock.now += 11
    expired = await page(client, "/ui/runs")
    assert expired.status_code == 303 and expired.headers["location"].endswith("reason=refused")
    again = await client.get(expired.headers["location"])
    assert "no longer accepts your token" in again.text


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/ui/runs?phase=Running", 400, "phase: &#39;Running&#39; is not a phase of an archived run"),
        ("/ui/runs?search=50%25", 400, "search: &#39;50%&#39; is not a part of a run name"),
        ("/ui/runs?namespace=" + HOSTILE, 400, "namespace: &#39;&lt;script&gt;"),
        ("/ui/runs?cursor=garbage", 400, "cursor:"),
        ("/ui/runs?limit=0", 400, "limit: 0 is not from 1 to 500"),
        ("/ui/costs?groupBy=" + HOSTILE, 400, "groupBy: &#39;&lt;script&gt;"),
        ("/ui/costs?days=5", 400, "days: &#39;5&#39; is not one of 7, 30, 90"),
        ("/ui/costs?to=yesterday", 400, "to: &#39;yesterday&#39; is not a date"),
        ("/ui/costs?to=9999-12-31", 400, "to: &#39;9999-12-31&#39; is not a date"),
        ("/ui/runs/team-a/" + "x" * 300, 404, "no archived AgentRun"),
        ("/ui/runs/team-a/a1?uid=" + "u" * 100, 404, "no archived AgentRun"),
    ],
)
async def test_careless_and_hostile_parameters_are_pages_that_name_them(
    client: httpx.AsyncClient, path: str, status: int, says: str
) -> None:
    response = await page(client, path)
    assert response.status_code == status
    assert says in response.text
    assert "<script>alert" not in response.text


async def test_search_and_filters_narrow_the_list_and_pages_follow_the_cursor(
    client: httpx.AsyncClient,
) -> None:
    assert run_names((await page(client, "/ui/runs?search=A3")).text) == ["a3"]
    assert run_names((await page(client, "/ui/runs?phase=Failed")).text) == ["a4"]
    assert run_names((await page(client, "/ui/runs?model=m-large", "admin")).text) == ["b2", "a3"]
    seen: list[str] = []
    path = "/ui/runs?team=team-a&limit=2"
    for _ in range(5):
        html = (await page(client, path)).text
        seen += run_names(html)
        found = re.search(r'<a href="([^"]+)" rel="next">', html)
        if found is None:
            break
        path = found.group(1).replace("&amp;", "&") + "&limit=2"
    assert seen == ["hostile", "a5", "a4", "a3", "a2", "a1"]


async def test_the_list_refreshes_only_on_its_first_page(client: httpx.AsyncClient) -> None:
    first = (await page(client, "/ui/runs?limit=2")).text
    assert '<tbody id="runs" data-live="5">' in first
    cursor = re.search(r'cursor=([^"&]+)', first)
    assert cursor is not None
    later = (await page(client, f"/ui/runs?limit=2&cursor={cursor.group(1)}")).text
    assert '<tbody id="runs">' in later and "First page" in later
    rows = await page(client, "/ui/runs?part=rows")
    assert rows.text.lstrip().startswith('<tr class="run" data-name="hostile">') and "<html" not in rows.text


async def test_the_costs_chart_draws_each_group_and_the_daily_budget_limit(client: httpx.AsyncClient) -> None:
    html = (await page(client, "/ui/costs?days=7&to=2026-11-30")).text
    assert "from 2026-11-24 to 2026-11-30 (UTC), total 0.0135" in html
    [points] = re.findall(r'<polyline class="series series-0" points="([^"]+)"><title>team-a: 0.0135', html)
    heights = [float(p.split(",")[1]) for p in points.split()]
    assert len(heights) == 7 and heights[:6] == [216.0] * 6 and heights[6] < 216.0  # all spend on the 30th
    assert "team-a/daily: 0.01 a day" in html and 'class="limit"' in html
    assert '<rect class="used" x="0" y="0" width="80.0"' in html  # 0.008 of 0.01 spent and held
    user = (await page(client, "/ui/costs?groupBy=model&days=30&to=2026-12-01")).text
    assert "m-large" in user and "a day" not in user  # no budget is scoped to a model


async def test_local_mode_needs_no_sign_in(
    reader: ArchiveReader, clock: Clock, budgets: list[JsonObject]
) -> None:
    access = NamespaceAccess(None, reader.namespaces, clock=clock)
    async for http in make_client(reader, LocalAuthenticator(), access, budgets, "http://127.0.0.1"):
        listed = await http.get("/ui/runs")
        assert listed.status_code == 200 and "b2" in run_names(listed.text)
        assert "Sign out" not in listed.text
        assert "local mode" in (await http.get("/ui/sign-in")).text
        assert (await http.get("/")).headers["location"] == "/ui/runs"
        assert (await http.get("/ui/static/dashboard.js")).status_code == 200


def test_a_trace_url_template_must_be_http_with_the_trace_id() -> None:
    assert check_trace_url(TRACE) == TRACE
    for bad in ("javascript:alert(1)//{traceId}", "https://jaeger.example/trace/", "ftp://x/{traceId}"):
        with pytest.raises(ValueError, match="must be an http:// or https:// URL with \\{traceId\\}"):
            check_trace_url(bad)


def test_the_chart_draws_the_six_largest_groups_and_counts_the_rest() -> None:
    days = days_of(date(2026, 11, 28), 3)
    points = [CostPoint(days[i % 3], f"team-{i}", 1000 * (i + 1)) for i in range(8)]
    points.append(CostPoint("2026-10-01", "team-0", 10**9))  # outside the window: left out
    chart = cost_chart(points, days, [("team-7/daily: 0.01 a day", 10_000), ("huge", 10**12)])
    assert [s.key for s in chart.series] == [f"team-{i}" for i in range(7, 1, -1)]
    assert (chart.rest, chart.rest_total) == (2, "0.003")  # team-0 and team-1
    # The scale's top is the round step (5000) above a quarter of 1.1 times the larger of the spend (8000)
    # and the near limit (10000), times four; the plot runs from 216 (nothing) up to 8. The huge limit
    # is neither on the scale nor drawn.
    middle = CHART_LEFT + (CHART_WIDTH - CHART_LEFT - 8) / 2
    assert chart.series[0].points.split()[1] == f"{middle:.1f},{216 - 208 * 8000 / 20000:.1f}"
    assert chart.limits == [LimitLine("team-7/daily: 0.01 a day", 216 - 208 * 10000 / 20000)]
    assert [t.label for t in chart.y_ticks] == ["0.00", "0.005", "0.01", "0.015", "0.02"]
    assert [t.label for t in chart.x_ticks] == ["11-28", "11-29", "11-30"]
    assert cost_chart([], days, []).empty and not cost_chart([], [], []).series


@pytest.mark.parametrize(
    "record",
    [
        None,
        [],
        {"status": []},
        {"status": {"calls": ["x", {"usage": "many", "costMicros": "free", "fallbacks": [1, None]}]}},
        {
            "status": {
                "attempts": [{"startTime": "yesterday"}, {"startTime": 5}],
                "policy": {"reasons": "one"},
            }
        },
        {
            "status": {
                "artifacts": [{"name": None, "sizeBytes": True}],
                "budgetReservations": [{"amountMicros": 1.5}],
            }
        },
        {"spec": {"limits": []}, "status": {"traceId": "javascript:alert(1)", "conditions": [None, {}]}},
    ],
)
def test_a_record_of_any_shape_makes_a_page_of_dashes(record: Any) -> None:
    view = run_view(record, namespace="n", name="r", uid="u", trace_template=TRACE)
    assert view.trace_url is None
    assert all(c.cost in ("-",) or c.cost for c in view.calls)
    assert view.max_cost == "-"


async def test_budgets_the_api_server_cannot_list_leave_the_spend_on_the_page(
    reader: ArchiveReader, server: FakeApiServer, clock: Clock
) -> None:
    async def refusing() -> list[JsonObject]:
        raise KubeError(429, "TooManyRequests", "storage is (re)initializing")

    access = NamespaceAccess(server, reader.namespaces, clock=clock)
    app = create_app(
        ReadService(reader, access, CursorSigner(KEY), refusing),
        TokenReviewAuthenticator(server, clock=clock),
        DashboardSettings(today=lambda: date(2026, 11, 30)),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://127.0.0.1") as http:
        response = await page(http, "/ui/costs")
    assert response.status_code == 200
    assert (
        "The Budgets cannot be listed now: 429 TooManyRequests: storage is (re)initializing" in response.text
    )
    assert "<title>team-a: 0.0135</title>" in response.text


@pytest.mark.parametrize(
    ("least", "step"), [(0.1, 1), (1, 1), (3, 5), (2750, 5000), (20001, 25000), (1.2e9, 2_000_000_000)]
)
def test_the_y_axis_steps_are_round(least: float, step: int) -> None:
    assert tick_step(least) == step


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("javascript:alert(1)//{traceId}", "must be an http:// or https:// URL with {traceId}"),
        ("https://jaeger.example/trace/", "must be an http:// or https:// URL with {traceId}"),
    ],
)
def test_jesus_api_refuses_a_trace_url_it_cannot_link_naming_the_flag(template: str, says: str) -> None:
    from jesus.cli import CommandError
    from jesus.cli.api import build_app

    with pytest.raises(CommandError, match=r"^--trace-url: ") as refused:
        build_app(local=True, database="sqlite:///:memory:", cursor_key=KEY, trace_url=template)
    assert says in str(refused.value)


async def test_a_hostile_next_page_is_escaped_on_the_form_and_never_leaves_the_dashboard(
    client: httpx.AsyncClient,
) -> None:
    form = await client.get(
        "/ui/sign-in", params={"next": '/ui/"><script>alert(1)</script>', "reason": HOSTILE}
    )
    assert form.status_code == 200
    assert "<script>alert" not in form.text and "&#34;&gt;&lt;script&gt;alert(1)" in form.text
    assert "onerror" not in form.text  # an unknown reason code shows nothing of the request's text
    response = await client.post(
        "/ui/sign-in", data={"token": "viewer-a", "next": "/ui/runs\r\nSet-Cookie: x=1"}, headers=SAME_ORIGIN
    )
    assert response.headers["location"] == "/ui/runs" and "x=1" not in response.headers["set-cookie"]
