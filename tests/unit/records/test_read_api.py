"""The read API over HTTP (ASGI, in process) on an SQLite archive, with a fake API server answering the
TokenReviews and SubjectAccessReviews: who sees what, every refusal, every careless or hostile
parameter, the caches on an injected clock (the reviews' and the answers', which `client` has on, as
`jesus api` does), and the published OpenAPI document."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.builders.archived_runs import archive, archived_run, standard_runs

from jesus.api.objects import JsonObject
from jesus.kube import KubeError
from jesus.logic.run_queries import CursorSigner
from jesus.readapi.access import LocalAuthenticator, NamespaceAccess, TokenReviewAuthenticator
from jesus.readapi.answers import AnswerCache
from jesus.readapi.app import create_app
from jesus.readapi.service import ReadService
from jesus.records import RecordStore, database_url
from jesus.records.reader import ArchiveReader

REPO = Path(__file__).resolve().parents[3]
KEY = b"k" * 32
VIEWER_A = {"username": "system:serviceaccount:team-a:viewer", "groups": ["system:serviceaccounts"]}
ADMIN = {"username": "admin", "groups": ["system:masters"]}
STRANGER = {"username": "stranger", "groups": []}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeApiServer:
    """TokenReview: the tokens it knows; SubjectAccessReview: list agentruns where granted."""

    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, Any]] = {"viewer-a": VIEWER_A, "admin": ADMIN, "stranger": STRANGER}
        self.grants: dict[str, set[str]] = {"system:serviceaccount:team-a:viewer": {"team-a"}, "admin": {""}}
        self.token_reviews = 0
        self.access_reviews: list[tuple[str, str]] = []
        self.down = False

    async def review_token(self, token: str, audiences: list[str]) -> JsonObject:
        self.token_reviews += 1
        if self.down:
            raise KubeError(0, "NoResponse", "connection refused")
        if token not in self.tokens:
            return {"authenticated": False, "error": "invalid bearer token"}
        return {"authenticated": True, "user": self.tokens[token]}

    async def review_access(self, user: JsonObject, attributes: JsonObject) -> JsonObject:
        namespace = attributes.get("namespace", "")
        assert attributes["resource"] == "agentruns" and attributes["verb"] == "list"
        self.access_reviews.append((user["username"], namespace))
        if self.down:
            raise KubeError(503, "ServiceUnavailable", "down")
        return {"allowed": namespace in self.grants.get(user["username"], set())}


BUDGETS: list[JsonObject] = [
    {
        "metadata": {"namespace": "team-a", "name": "team"},
        "spec": {"limit": "10.00"},
        "status": {"spentMicros": 1},
    },
    {"metadata": {"namespace": "team-b", "name": "team"}, "spec": {"limit": "20.00"}, "status": {}},
]


@pytest.fixture
def database(tmp_path: Path) -> str:
    """This module's HTTP tests run on SQLite; the queries have their suite on both databases."""
    return f"sqlite:///{tmp_path / 'archive.db'}"


@pytest.fixture
def server() -> FakeApiServer:
    return FakeApiServer()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def filled(store: RecordStore) -> RecordStore:
    await archive(store, *standard_runs())
    return store


@pytest.fixture
def answers(clock: Clock) -> AnswerCache:
    return AnswerCache(clock, seconds=2.0)


@pytest.fixture
async def client(
    filled: RecordStore, server: FakeApiServer, clock: Clock, answers: AnswerCache
) -> AsyncIterator[httpx.AsyncClient]:
    reader = ArchiveReader(filled.url)

    async def budgets() -> list[JsonObject]:
        return BUDGETS

    access = NamespaceAccess(server, reader.namespaces, clock=clock, cache_seconds=10)
    app = create_app(
        ReadService(reader, access, CursorSigner(KEY), budgets, answers),
        TokenReviewAuthenticator(server, clock=clock, cache_seconds=10),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as http:
        yield http
    await reader.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def names(client: httpx.AsyncClient, token: str, query: str = "") -> list[str]:
    response = await client.get(f"/v1/runs{query}", headers=auth(token))
    assert response.status_code == 200, response.text
    return [r["name"] for r in response.json()["items"]]


async def test_a_viewer_sees_only_the_namespaces_it_may_list(client: httpx.AsyncClient) -> None:
    assert await names(client, "viewer-a") == ["a5", "a4", "a3", "a2", "a1"]
    assert await names(client, "admin") == ["b2", "a5", "a4", "a3", "b1", "a2", "a1"]
    assert await names(client, "stranger") == []
    # Asking for another team's namespace is an empty answer, not a refusal that says it exists.
    assert await names(client, "viewer-a", "?namespace=team-b") == []
    hidden = await client.get("/v1/runs/team-b/b1", headers=auth("viewer-a"))
    missing = await client.get("/v1/runs/team-a/nope", headers=auth("viewer-a"))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["code"] == missing.json()["error"]["code"] == "NotFound"
    assert (await client.get("/v1/runs/team-b/b1/calls", headers=auth("viewer-a"))).status_code == 404
    run = await client.get("/v1/runs/team-a/a3", headers=auth("viewer-a"))
    assert run.status_code == 200
    body = run.json()
    assert (body["name"], body["costMicros"], body["cost"], body["team"]) == ("a3", 4500, "0.0045", "team-a")
    assert body["record"]["spec"]["owner"]["team"] == "team-a"
    calls = (await client.get("/v1/runs/team-a/a3/calls", headers=auth("viewer-a"))).json()
    assert [c["adapter"] for c in calls["items"]] == ["backup", "primary", "primary"]
    assert calls["items"][0]["fallbacks"] == [{"adapter": "primary", "errorClass": "RateLimited"}]


async def test_costs_budgets_and_audit_follow_the_same_namespaces(client: httpx.AsyncClient) -> None:
    costs = (await client.get("/v1/costs?groupBy=team", headers=auth("viewer-a"))).json()
    assert [(g["key"], g["costMicros"]) for g in costs["groups"]] == [("team-a", 12000)]
    assert costs["totalMicros"] == 12000
    every = (await client.get("/v1/costs?groupBy=model", headers=auth("admin"))).json()
    assert [(g["key"], g["runs"], g["calls"]) for g in every["groups"]] == [
        ("m-small", 4, 7),
        ("m-large", 2, 5),
    ]
    windowed = await client.get(
        "/v1/costs?groupBy=user&from=2026-11-30T10:02:00Z&to=2026-11-30T10:03:00Z", headers=auth("admin")
    )
    assert windowed.json()["from"] == "2026-11-30T10:02:00Z"
    assert {g["key"] for g in windowed.json()["groups"]} == {"bob@example.com", "eve@example.com"}
    none = (await client.get("/v1/costs?groupBy=team&namespace=team-b", headers=auth("viewer-a"))).json()
    assert none["groups"] == []
    budgets = (await client.get("/v1/budgets", headers=auth("viewer-a"))).json()
    assert [(b["namespace"], b["spec"]["limit"]) for b in budgets["items"]] == [("team-a", "10.00")]
    assert len((await client.get("/v1/budgets", headers=auth("admin"))).json()["items"]) == 2
    audit = (await client.get("/v1/audit", headers=auth("viewer-a"))).json()
    assert {r["namespace"] for r in audit["items"]} == {"team-a"} and len(audit["items"]) == 5
    assert all(len(r["hash"]) == 64 for r in audit["items"])


async def test_pages_follow_the_cursor_to_the_end(client: httpx.AsyncClient) -> None:
    seen: list[str] = []
    query = "?limit=2"
    while True:
        page = (await client.get(f"/v1/runs{query}", headers=auth("admin"))).json()
        seen += [r["name"] for r in page["items"]]
        if page["nextCursor"] is None:
            break
        query = f"?limit=2&cursor={page['nextCursor']}"
    assert seen == ["b2", "a5", "a4", "a3", "b1", "a2", "a1"]
    audit = (await client.get("/v1/audit?limit=3", headers=auth("admin"))).json()
    rest = (
        await client.get(f"/v1/audit?limit=10&cursor={audit['nextCursor']}", headers=auth("admin"))
    ).json()
    assert [r["id"] for r in audit["items"] + rest["items"]] == list(range(1, 8))
    assert rest["nextCursor"] is None


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "needs an Authorization: Bearer"),
        ({"Authorization": ""}, "needs an Authorization: Bearer"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "scheme must be Bearer"),
        ({"Authorization": "Bearer "}, "empty or not printable ASCII"),
        ({"Authorization": "Bearer tok\u00e9n".encode()}, "not printable ASCII"),
        ({"Authorization": "Bearer " + "x" * 9000}, "longer than 8192 bytes"),
        ({"Authorization": "Bearer forged.jwt.token"}, "does not authenticate this token: invalid bearer"),
    ],
)
async def test_missing_malformed_and_unknown_tokens_are_refused_with_401(
    client: httpx.AsyncClient, server: FakeApiServer, headers: dict[str, str | bytes], why: str
) -> None:
    for path in ("/v1/runs", "/v1/runs/team-a/a1", "/v1/costs?groupBy=team", "/v1/budgets", "/v1/audit"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert why in response.json()["error"]["message"]
        assert "admin API" not in response.json()["error"]["message"]
    # Refused unread: only a well-formed token is ever sent for review (once; the answer is cached).
    assert server.token_reviews == (1 if "forged" in str(headers.get("Authorization", "")) else 0)


async def test_an_api_server_that_cannot_be_asked_refuses_with_503(
    client: httpx.AsyncClient, server: FakeApiServer
) -> None:
    server.down = True
    response = await client.get("/v1/runs", headers=auth("viewer-a"))
    assert response.status_code == 503
    assert "TokenReview" in response.json()["error"]["message"]
    assert response.json()["error"]["code"] == "Unavailable"


async def test_reviews_are_cached_until_the_clock_passes_their_ttl(
    client: httpx.AsyncClient, server: FakeApiServer, clock: Clock
) -> None:
    for _ in range(5):
        assert await names(client, "viewer-a") == ["a5", "a4", "a3", "a2", "a1"]
    assert server.token_reviews == 1
    # One cluster-wide review, then one per archived namespace: asked once in 10 s.
    assert sorted(server.access_reviews) == sorted(
        [(VIEWER_A["username"], ""), (VIEWER_A["username"], "team-a"), (VIEWER_A["username"], "team-b")]
    )
    server.grants[VIEWER_A["username"]] = {"team-a", "team-b"}  # granted meanwhile
    clock.now += 9.9
    assert await names(client, "viewer-a") == ["a5", "a4", "a3", "a2", "a1"]
    clock.now += 0.2
    assert await names(client, "viewer-a") == ["b2", "a5", "a4", "a3", "b1", "a2", "a1"]
    assert server.token_reviews == 2
    del server.tokens["viewer-a"]  # revoked: refused once the cached answer expires
    clock.now += 10.1
    assert (await client.get("/v1/runs", headers=auth("viewer-a"))).status_code == 401


async def test_a_cached_answer_never_reaches_a_caller_who_may_not_read_it(
    client: httpx.AsyncClient, answers: AnswerCache
) -> None:
    # The admin's answers (every namespace) are kept first; then the viewer asks the same questions.
    for token in ("admin", "admin", "viewer-a", "viewer-a", "stranger"):
        listed = await names(client, token)
        shown = await names(client, token, "?namespace=team-b")
        run = await client.get("/v1/runs/team-b/b1", headers=auth(token))
        calls = await client.get("/v1/runs/team-b/b1/calls", headers=auth(token))
        costs = (await client.get("/v1/costs?groupBy=team", headers=auth(token))).json()["groups"]
        if token == "admin":
            assert listed == ["b2", "a5", "a4", "a3", "b1", "a2", "a1"] and shown == ["b2", "b1"]
            assert run.status_code == calls.status_code == 200
            assert {g["key"] for g in costs} == {"team-a", "team-b"}
        else:
            assert listed == (["a5", "a4", "a3", "a2", "a1"] if token == "viewer-a" else [])
            assert shown == [] and run.status_code == calls.status_code == 404
            assert [g["key"] for g in costs] == (["team-a"] if token == "viewer-a" else [])
    assert answers.hits >= 10  # the second admin and viewer rounds were answered from the cache
    # The viewer's own kept run reaches no stranger either.
    assert (await client.get("/v1/runs/team-a/a3", headers=auth("viewer-a"))).status_code == 200
    assert (await client.get("/v1/runs/team-a/a3", headers=auth("stranger"))).status_code == 404


async def test_a_kept_run_is_refused_once_the_callers_access_is_revoked(
    client: httpx.AsyncClient, server: FakeApiServer, clock: Clock, answers: AnswerCache
) -> None:
    answers.seconds = 60  # kept far longer than the reviews (10 s)
    assert (await client.get("/v1/runs/team-a/a3", headers=auth("viewer-a"))).status_code == 200
    assert await names(client, "viewer-a", "?namespace=team-a") == ["a5", "a4", "a3", "a2", "a1"]
    server.grants[VIEWER_A["username"]] = set()
    clock.now += 10.1
    hits = answers.hits
    assert (await client.get("/v1/runs/team-a/a3", headers=auth("viewer-a"))).status_code == 404
    assert await names(client, "viewer-a", "?namespace=team-a") == []
    assert answers.hits == hits and len(answers) == 3  # both still kept (and the empty page), not given


async def test_a_newly_archived_run_is_listed_within_the_answers_seconds(
    client: httpx.AsyncClient, filled: RecordStore, clock: Clock
) -> None:
    assert (await names(client, "admin", "?limit=2")) == ["b2", "a5"]
    costs = (await client.get("/v1/costs?groupBy=team", headers=auth("admin"))).json()["totalMicros"]
    await archive(filled, archived_run("a6", completion="2026-11-30T10:07:00Z"))
    clock.now += 1.9  # the kept page and sum, at most 2 s old
    assert (await names(client, "admin", "?limit=2")) == ["b2", "a5"]
    assert (await names(client, "admin", "?limit=3")) == ["a6", "b2", "a5"]  # another question
    clock.now += 0.1
    assert (await names(client, "admin", "?limit=2")) == ["a6", "b2"]
    later = (await client.get("/v1/costs?groupBy=team", headers=auth("admin"))).json()["totalMicros"]
    assert later > costs


async def test_a_cursor_is_checked_before_any_kept_page_is_looked_for(
    client: httpx.AsyncClient, answers: AnswerCache
) -> None:
    page = (await client.get("/v1/runs?limit=2", headers=auth("admin"))).json()
    second = await client.get(f"/v1/runs?limit=2&cursor={page['nextCursor']}", headers=auth("admin"))
    assert [r["name"] for r in second.json()["items"]] == ["a4", "a3"]
    kept = len(answers)
    for query in (
        f"limit=2&team=team-a&cursor={page['nextCursor']}",  # the cursor of another filter
        f"limit=3&cursor={forge(page['nextCursor'], {'p': ['2026-11-30T10:05:00Z', 'z']})}",
        f"limit=500000&cursor={page['nextCursor']}",
    ):
        refused = await client.get(f"/v1/runs?{query}", headers=auth("admin"))
        assert refused.status_code == 400, (query, refused.text)
    assert len(answers) == kept  # nothing was asked, nothing was kept


def forge(cursor: str, change: dict[str, Any]) -> str:
    body, _, mac = cursor.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(change)
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{forged}.{mac}"


async def test_bad_and_forged_cursors_are_refused_naming_the_cursor(client: httpx.AsyncClient) -> None:
    first = (await client.get("/v1/runs?limit=2", headers=auth("admin"))).json()["nextCursor"]
    other_key = CursorSigner(b"z" * 32).make("runs", None, ["2026-11-30T10:04:00Z", "x"])
    foreign_filters = (await client.get("/v1/runs?limit=1&team=team-a", headers=auth("admin"))).json()
    audit_cursor = (await client.get("/v1/audit?limit=1", headers=auth("admin"))).json()["nextCursor"]
    cases = {
        "garbage": "not a cursor",
        "not base64": "%%%%.abc",
        "no signature": first.partition(".")[0],
        "edited position": forge(first, {"p": ["2099-01-01T00:00:00Z", "zzz"]}),
        "another key": other_key,
        "other filters": foreign_filters["nextCursor"],
        "another list": audit_cursor,
        "huge": "a" * 5000,
    }
    for case, cursor in cases.items():
        response = await client.get(
            "/v1/runs", params={"limit": "2", "cursor": cursor}, headers=auth("admin")
        )
        assert response.status_code == 400, (case, response.text)
        error = response.json()["error"]
        assert (error["code"], error["parameter"]) == ("BadParameter", "cursor"), case


@pytest.mark.parametrize(
    ("query", "parameter", "words"),
    [
        ("/v1/runs?limit=0", "limit", "not from 1 to 500"),
        ("/v1/runs?limit=100000000", "limit", "not from 1 to 500"),
        ("/v1/runs?limit=-5", "limit", "from 1 to 500"),
        ("/v1/runs?limit=abc", "limit", "integer"),
        ("/v1/runs?from=yesterday", "from", "not an RFC 3339 timestamp"),
        ("/v1/runs?to=2026-11-30T10:00:00", "to", "no timezone offset"),
        ("/v1/runs?from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z", "from", "is not before to="),
        ("/v1/runs?from=2026-12-01T00:00:00Z&to=2026-12-01T00:00:00Z", "from", "is not before to="),
        ("/v1/runs?phase=Running", "phase", "not a phase of an archived run"),
        ("/v1/runs?phase=Succeeded'--", "phase", "(one of Succeeded, Failed, Denied)"),
        ("/v1/runs?namespace=team-a'%20OR%20'1'='1", "namespace", "not a namespace name"),
        ("/v1/runs?team=a;DROP%20TABLE%20runs", "team", "not a team name"),
        ("/v1/runs?user=%00nul", "user", "not a user name"),
        ("/v1/costs", "groupBy", "is required"),
        ("/v1/costs?groupBy=namespace", "groupBy", "not one of team, user, model, adapter"),
        ("/v1/costs?groupBy=team&from=2026-13-40T00:00:00Z", "from", "not an RFC 3339"),
        ("/v1/audit?action=drop", "action", "is not one of"),
        ("/v1/audit?limit=501", "limit", "not from 1 to 500"),
        ("/v1/budgets?namespace=UPPER", "namespace", "not a namespace name"),
    ],
)
async def test_careless_and_hostile_parameters_are_400s_that_name_them(
    client: httpx.AsyncClient, query: str, parameter: str, words: str
) -> None:
    response = await client.get(query, headers=auth("admin"))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["parameter"]) == ("BadParameter", parameter)
    assert words in error["message"]


async def test_path_values_too_long_for_kubernetes_are_400s(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/runs/{'n' * 64}/run", headers=auth("admin"))
    assert response.status_code == 400 and response.json()["error"]["parameter"] == "namespace"


async def test_local_mode_serves_everything_without_a_token(filled: RecordStore) -> None:
    reader = ArchiveReader(filled.url)

    async def budgets() -> list[JsonObject]:
        return []

    access = NamespaceAccess(None, reader.namespaces, clock=Clock())
    app = create_app(ReadService(reader, access, CursorSigner(KEY), budgets), LocalAuthenticator())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as http:
        response = await http.get("/v1/runs")
        assert [r["name"] for r in response.json()["items"]] == ["b2", "a5", "a4", "a3", "b1", "a2", "a1"]
        assert (await http.get("/v1/runs/team-b/b1")).status_code == 200
        assert (await http.get("/healthz")).json() == {"status": "ok"}
    await reader.close()


async def test_the_published_openapi_document_is_current(client: httpx.AsyncClient) -> None:
    from jesus.cli.api import openapi_document

    served = (await client.get("/openapi.json")).json()
    document = openapi_document()
    assert json.loads(document) == served
    paths = set(served["paths"])
    assert paths == {
        "/v1/runs",
        "/v1/runs/{namespace}/{name}",
        "/v1/runs/{namespace}/{name}/calls",
        "/v1/runs/{namespace}/{name}/artifacts/{artifact}",
        "/v1/costs",
        "/v1/budgets",
        "/v1/audit",
    }
    assert served["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    committed = REPO / "docs" / "openapi" / "read-api.json"
    where = committed.relative_to(REPO)
    assert committed.read_text() == document, (
        f"{where} is stale: regenerate it: jesus api --openapi > {where}"
    )


def test_the_archive_fixture_is_sqlite(database: str) -> None:
    assert database_url(database).get_backend_name() == "sqlite"


def test_a_run_built_without_validation_is_the_validated_one() -> None:
    # Run.of skips validation for speed: it must still give what validating the same columns gives.
    import dataclasses

    from jesus.api.common import format_micros
    from jesus.readapi.models import Run
    from jesus.records.reader import RunSummary

    values: dict[str, Any] = {}
    for index, field in enumerate(dataclasses.fields(RunSummary)):
        text = "str" in str(field.type)
        values[field.name] = f"v{index}" if text else index
    summary = RunSummary(**values)
    fast = Run.of(summary)
    checked = Run.model_validate({**values, "cost": format_micros(summary.cost_micros)})
    assert fast == checked
    assert fast.model_dump_json(by_alias=True) == checked.model_dump_json(by_alias=True)


def test_a_detail_and_a_cost_group_built_without_validation_are_the_validated_ones() -> None:
    import dataclasses

    from jesus.api.common import format_micros
    from jesus.readapi.models import CostGroup, RunDetail
    from jesus.records.reader import CostLine, RunSummary

    values: dict[str, Any] = {}
    for index, field in enumerate(dataclasses.fields(RunSummary)):
        values[field.name] = f"v{index}" if "str" in str(field.type) else index
    record = {"spec": {"owner": {"team": "t\u00e9am"}}, "status": {"calls": [{"costMicros": 7}]}}
    fast = RunDetail.with_record(RunSummary(**values), record)
    checked = RunDetail.model_validate(
        {**values, "cost": format_micros(values["cost_micros"]), "record": record}
    )
    assert fast.model_dump_json(by_alias=True) == checked.model_dump_json(by_alias=True)
    for line in (CostLine("m-small", 3, 5, 10, 20, 4500), CostLine("team-a", 2, None, 1, 2, 0)):
        checked_line = CostGroup.model_validate(
            {**dataclasses.asdict(line), "cost": format_micros(line.cost_micros)}
        )
        assert CostGroup.of(line).model_dump_json(by_alias=True) == checked_line.model_dump_json(
            by_alias=True
        )


async def test_the_hot_routes_answer_exactly_as_fastapi_does(
    filled: RecordStore, server: FakeApiServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The list, detail and cost GETs are answered in front of FastAPI's routing (HotRoutes): for plain
    # requests, careless and hostile ones, every refusal, both apps give the same status, headers and
    # bytes; the odd ones are passed on to FastAPI, which answers them itself.
    from jesus.readapi.hot_routes import HotRoutes

    answered_here: list[str] = []
    answer_for = HotRoutes._answer_for

    def counted(self: HotRoutes, scope: Any) -> Any:
        found = answer_for(self, scope)
        if found is not None:
            answered_here.append(scope["path"])
        return found

    monkeypatch.setattr(HotRoutes, "_answer_for", counted)
    reader = ArchiveReader(filled.url)

    async def budgets() -> list[JsonObject]:
        return BUDGETS

    def app(hot: bool) -> Any:
        access = NamespaceAccess(server, reader.namespaces, clock=clock, cache_seconds=10)
        service = ReadService(reader, access, CursorSigner(KEY), budgets, AnswerCache(clock, seconds=0))
        authenticator = TokenReviewAuthenticator(server, clock=clock, cache_seconds=10)
        return create_app(service, authenticator, hot_routes=hot)

    hot, plain = app(True), app(False)
    first_page = "/v1/runs?limit=2"
    requests: list[tuple[str, str | None]] = [
        (first_page, "admin"),
        ("/v1/runs", "viewer-a"),
        ("/v1/runs?namespace=team-b", "viewer-a"),
        ("/v1/runs?limit=2&limit=3&team=team-a&phase=Succeeded&from=2026-11-30T10:01:00Z", "admin"),
        ("/v1/runs?limit=007&user=&model=m-small", "admin"),
        ("/v1/runs?limit=0", "admin"),
        ("/v1/runs?limit=00000001000", "admin"),
        ("/v1/runs?limit=%2B5", "admin"),
        ("/v1/runs?limit=abc", "admin"),
        ("/v1/runs?limit=99999999999999999999999", "admin"),
        ("/v1/runs?cursor=forged&limit=2", "admin"),
        ("/v1/runs?namespace=team-a'%20OR%201=1", "admin"),
        ("/v1/runs?team=%ff%fe", "admin"),
        ("/v1/runs", None),
        ("/v1/runs", "unknown-token"),
        ("/v1/runs/team-a/a1", "admin"),
        ("/v1/runs/team-a/a1", "viewer-a"),
        ("/v1/runs/team-b/b1", "viewer-a"),
        ("/v1/runs/team-a/nothing", "admin"),
        ("/v1/runs/team-a/a1?uid=not-its-uid", "admin"),
        (f"/v1/runs/team-a/a1?uid={'u' * 65}", "admin"),
        (f"/v1/runs/{'n' * 64}/a1", "admin"),
        (f"/v1/runs/team-a/{'r' * 254}", "admin"),
        ("/v1/runs/team-a/a1/", "admin"),
        ("/v1/runs/team-a/a1/calls", "admin"),
        ("/v1/runs/team%2Fa/a1", "admin"),
        ("/v1/costs?groupBy=model", "admin"),
        (
            "/v1/costs?groupBy=user&namespace=team-a&from=2026-11-30T10:00:00Z&to=2026-11-30T10:03:00Z",
            "admin",
        ),
        ("/v1/costs?groupBy=team", "viewer-a"),
        ("/v1/costs?groupBy=team&namespace=team-b", "viewer-a"),
        ("/v1/costs", "admin"),
        ("/v1/costs?groupBy=namespace", "admin"),
        ("/v1/costs?groupBy=team&from=2026-13-40T00:00:00Z", "admin"),
        ("/v1/costs?groupBy=team", None),
        ("/healthz", None),
    ]
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(hot), base_url="http://api") as fast,
        httpx.AsyncClient(transport=httpx.ASGITransport(plain), base_url="http://api") as slow,
    ):
        for path, token in requests:
            headers = auth(token) if token else {}
            one, other = await fast.get(path, headers=headers), await slow.get(path, headers=headers)
            assert (one.status_code, one.content) == (other.status_code, other.content), path
            assert one.headers == other.headers, path
        server.down = True
        clock.now += 100  # the reviews have expired: the API server cannot be asked
        for path in ("/v1/runs", "/v1/runs/team-a/a1", "/v1/costs?groupBy=team"):
            one, other = (
                await fast.get(path, headers=auth("admin")),
                await slow.get(path, headers=auth("admin")),
            )
            assert one.status_code == other.status_code == 503 and one.content == other.content, path
    await reader.close()
    # The plain ones were answered in front of FastAPI; the odd ones (a limit FastAPI must read, paths
    # and uids too long, a path of three segments, bytes that are not UTF-8) were not.
    assert answered_here.count("/v1/costs") == 9  # every cost request above
    assert "/v1/runs/team-a/a1/" not in answered_here and f"/v1/runs/{'n' * 64}/a1" not in answered_here
    assert sum(path == "/v1/runs" for path in answered_here) == 12


def test_the_hot_routes_know_every_parameter_the_routes_declare() -> None:
    # A parameter added to a route and not to HotRoutes would be ignored on the hot path.
    from jesus.cli.api import openapi_document
    from jesus.readapi import hot_routes

    paths = json.loads(openapi_document())["paths"]

    def declared(path: str) -> set[str]:
        return {p["name"] for p in paths[path]["get"]["parameters"] if p["in"] == "query"}

    assert declared("/v1/runs") == set(hot_routes.LIST_PARAMETERS)
    assert declared("/v1/costs") == set(hot_routes.COST_PARAMETERS)
    assert declared("/v1/runs/{namespace}/{name}") == {"uid"}
