"""The router's HTTP boundary against hostile and careless clients: odd tokens, oversized, deep,
mistyped and non-UTF-8 bodies, unbounded token lifetimes and forged log lines. Every refusal is a 4xx
in the OpenAI error shape naming what was wrong, and the router keeps serving afterwards."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from prometheus_client import CollectorRegistry
from tests.builders.adapters import scripted_adapter
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

from jesus.cli.router import build_service
from jesus.router.bodies import InputLimits, json_depth
from jesus.router.logsafe import escape_controls, router_logger
from jesus.router.schema import DEFAULT_TOKEN_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS
from jesus.router.service import RouterService, build_app
from jesus.router.tokens import MAX_TOKEN_LENGTH, TokenSigner
from jesus.specs import load_text

from .test_router_service import ROUTER_SECRETS, chat

ADMIN = "boundary-admin"
NOW = 1_000_000.0
LIMITS = InputLimits(max_body_bytes=256 * 1024, max_json_depth=64)


def make_service(limits: InputLimits = LIMITS) -> RouterService:
    specs = load_text(to_yaml(scripted_adapter("scripted", text="still serving"), route_policy("route")))
    service = build_service(
        specs,
        live=False,
        secrets_dir=ROUTER_SECRETS,
        admin_token=ADMIN,
        registry=CollectorRegistry(),
        limits=limits,
    )
    service.clock = lambda: NOW
    return service


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=build_app(make_service()))
    async with httpx2.AsyncClient(transport=transport, base_url="http://router") as http:
        yield http


def admin_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN}"}


async def run_token(client: httpx2.AsyncClient, **extra: Any) -> str:
    answer = await client.post(
        "/admin/v1/runs", json={"run": "r1", "routePolicy": "route", **extra}, headers=admin_headers()
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


def assert_refused(answer: httpx2.Response, status: int, *words: str) -> None:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["type"] == "jesus_router_error"
    for word in words:
        assert word in error["message"], error["message"]


async def assert_still_serving(client: httpx2.AsyncClient) -> None:
    token = await run_token(client)
    answer = await client.post(
        "/v1/chat/completions", json=chat(), headers={"authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "still serving"


ODD_AUTHORIZATIONS = [
    "Bearer ünïcödé".encode(),
    b"Bearer \xff\xfe\x00",
    b"Bearer " + b"x" * (MAX_TOKEN_LENGTH + 1),
    b"Bearer ",
    b"Bearer",
    b"",
    b"Basic dXNlcjpwYXNz",
    b"Bearer two words",
    "Bearer jr1.é.é".encode(),
]


@pytest.mark.parametrize("authorization", ODD_AUTHORIZATIONS)
async def test_an_odd_token_is_a_clean_401_everywhere(
    client: httpx2.AsyncClient, authorization: bytes
) -> None:
    headers = {"authorization": authorization}
    chat_answer = await client.post("/v1/chat/completions", json=chat(), headers=headers)
    models = await client.get("/v1/models", headers=headers)
    admin = await client.post("/admin/v1/runs", json={"run": "r", "routePolicy": "route"}, headers=headers)
    revoke = await client.delete("/admin/v1/runs", params={"token": "t"}, headers=headers)
    for answer in (chat_answer, models, admin, revoke):
        assert_refused(answer, 401)
        assert answer.json()["error"]["code"] == "Unauthenticated"
    await assert_still_serving(client)


@pytest.mark.parametrize("token", ["ünïcödé", "jr1.é.é", "x" * 5000, "jr1." + "A" * 5000 + ".x", ""])
async def test_revoking_an_odd_token_is_a_404(client: httpx2.AsyncClient, token: str) -> None:
    answer = await client.delete("/admin/v1/runs", params={"token": token}, headers=admin_headers())
    assert_refused(answer, 404)


@pytest.mark.parametrize("token", ["ünïcödé", "jr1.é.é", "jr1.\udcff.x", "x" * 100_000])
def test_the_signer_refuses_odd_tokens_without_raising(token: str) -> None:
    assert TokenSigner(ADMIN).verify(token, now=0) is None


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_CHAT_BODIES: list[tuple[bytes, int, str]] = [
    (nested(50_000).encode(), 400, "nests deeper than 64 levels"),
    (b'{"messages": ' + nested(65).encode() + b"}", 400, "nests deeper than 64 levels"),
    (b"[" * 50_000, 400, "nests deeper"),
    (json.dumps(chat(tools=5)).encode(), 400, "tools: a list is required"),
    (json.dumps(chat(tools={"a": 1})).encode(), 400, "tools: a list is required"),
    (
        json.dumps({"messages": [{"role": "assistant", "tool_calls": 5}]}).encode(),
        400,
        "messages[0].tool_calls: a list is required",
    ),
    (
        json.dumps(
            {
                "messages": [
                    {"role": "assistant", "tool_calls": [{"function": {"name": 5, "arguments": "{}"}}]}
                ]
            }
        ).encode(),
        400,
        "messages[0].tool_calls[0].function.name: required",
    ),
    (
        json.dumps(
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "f", "arguments": nested(5000)}}],
                    }
                ]
            }
        ).encode(),
        400,
        "messages[0].tool_calls[0].function.arguments: not JSON: nested deeper",
    ),
    (json.dumps(chat(tools=[{"function": {"name": "f", "description": 5}}])).encode(), 400, "description"),
    (json.dumps(chat(max_tokens=10**30)).encode(), 400, "max_tokens"),
    (json.dumps(chat(max_tokens=1.5)).encode(), 400, "max_tokens"),
    (json.dumps(chat(stop=["s"] * 100)).encode(), 400, "stop: at most"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}] * 5000}).encode(), 400, "messages: at most"),
    (json.dumps({"messages": [{"role": "user", "tool_call_id": 5}]}).encode(), 400, "tool_call_id"),
    (b'{"messages": [{"role": "user", "content": NaN}]}', 400, "not JSON"),
    (b'{"max_tokens": ' + b"9" * 5000 + b"}", 400, "not JSON"),
    (b'{"messages": "\xff\xfe"}', 400, "not UTF-8"),
    ("\ufeff{}".encode(), 400, "not JSON"),
    (b"", 400, "not JSON"),
    (b"null", 400, "must be a JSON object"),
    (b'"' + b"[" * 100_00 + b'"', 400, "must be a JSON object"),
]


@pytest.mark.parametrize(("body", "status", "words"), BAD_CHAT_BODIES)
async def test_a_bad_chat_body_is_refused_naming_what(
    client: httpx2.AsyncClient, body: bytes, status: int, words: str
) -> None:
    token = await run_token(client)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    answer = await client.post("/v1/chat/completions", content=body, headers=headers)
    assert_refused(answer, status, words)
    await assert_still_serving(client)


async def test_brackets_inside_strings_do_not_count_as_nesting(client: httpx2.AsyncClient) -> None:
    token = await run_token(client)
    content = "[[[[{{{{" * 1000 + '\\"]]' + "]" * 1000
    answer = await client.post(
        "/v1/chat/completions",
        json=chat(messages=[{"role": "user", "content": content}]),
        headers={"authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text


async def test_bodies_past_the_cap_are_413_declared_or_streamed(client: httpx2.AsyncClient) -> None:
    token = await run_token(client)
    headers = {"authorization": f"Bearer {token}"}
    too_big = json.dumps(chat(messages=[{"role": "user", "content": "x" * LIMITS.max_body_bytes}])).encode()
    declared = await client.post("/v1/chat/completions", content=too_big, headers=headers)
    received: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(too_big), 8192):
            received.append(start)
            yield too_big[start : start + 8192]

    streamed = await client.post("/v1/chat/completions", content=chunks(), headers=headers)
    admin = await client.post("/admin/v1/runs", content=too_big, headers=admin_headers())
    for answer in (declared, streamed, admin):
        assert_refused(answer, 413, f"larger than {LIMITS.max_body_bytes} bytes")
        assert answer.json()["error"]["code"] == "PayloadTooLarge"
    assert "content-length" not in streamed.request.headers
    await assert_still_serving(client)


@pytest.mark.parametrize("content_length", ["ten", "-1", "1e3", "٣"])
async def test_a_malformed_content_length_is_a_400(client: httpx2.AsyncClient, content_length: str) -> None:
    scope_headers = [
        (b"content-length", content_length.encode()),
        (b"authorization", f"Bearer {ADMIN}".encode()),
    ]
    app = build_app(make_service())
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/admin/v1/runs",
        "headers": scope_headers,
        "query_string": b"",
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert b"Content-Length" in sent[1]["body"]


async def test_a_body_that_is_not_json_by_its_media_type_is_a_415(client: httpx2.AsyncClient) -> None:
    token = await run_token(client)
    answer = await client.post(
        "/v1/chat/completions",
        content=json.dumps(chat()).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "text/plain"},
    )
    vendor = await client.post(
        "/v1/chat/completions",
        content=json.dumps(chat()).encode(),
        headers={
            "authorization": f"Bearer {token}",
            "content-type": "application/vnd.api+json; charset=utf-8",
        },
    )
    assert_refused(answer, 415, "application/json")
    assert vendor.status_code == 200


@pytest.mark.parametrize(
    ("ttl", "expires_in"),
    [(None, DEFAULT_TOKEN_TTL_SECONDS), (1, 1), (3600, 3600), (MAX_TOKEN_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS)],
)
async def test_a_token_lives_as_long_as_asked_within_bounds(
    client: httpx2.AsyncClient, ttl: int | None, expires_in: int
) -> None:
    body: dict[str, Any] = {"run": "r1", "routePolicy": "route"}
    if ttl is not None:
        body["ttlSeconds"] = ttl
    answer = await client.post("/admin/v1/runs", json=body, headers=admin_headers())
    assert answer.status_code == 201
    assert answer.json()["expiresAt"] == int(NOW) + expires_in


@pytest.mark.parametrize(
    "ttl", [0, -1, 1e30, 3600.0, 3600.5, "3600", True, MAX_TOKEN_TTL_SECONDS + 1, 10**40]
)
async def test_a_token_lifetime_out_of_bounds_is_refused(client: httpx2.AsyncClient, ttl: object) -> None:
    answer = await client.post(
        "/admin/v1/runs",
        json={"run": "r1", "routePolicy": "route", "ttlSeconds": ttl},
        headers=admin_headers(),
    )
    assert_refused(answer, 400, "ttlSeconds", str(MAX_TOKEN_TTL_SECONDS))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("run", "r1\nINFO jesus.router.service: Registered run run=forged"),
        ("run", "R1"),
        ("run", ""),
        ("run", "x" * 254),
        ("run", 5),
        ("run", None),
        ("namespace", "team a"),
        ("namespace", "a.b"),
        ("namespace", "\x1b[31mred"),
        ("routePolicy", "route\r\n"),
        ("routePolicy", ["route"]),
        ("dataClassification", "secret"),
        ("maxTokens", -1),
        ("maxTokens", "100"),
        ("maxCostMicros", 2**64),
        ("maxCostMicros", 1.5),
        ("maxCostMicro", 100),
    ],
)
async def test_a_bad_registration_names_its_field(
    client: httpx2.AsyncClient, field: str, value: object
) -> None:
    answer = await client.post(
        "/admin/v1/runs", json={"run": "r1", "routePolicy": "route", field: value}, headers=admin_headers()
    )
    assert_refused(answer, 400, f"{field}: ")


@pytest.mark.parametrize("body", [b"[]", b"5", b'"run"', b"{", nested(10_000).encode(), b"\xff"])
async def test_a_registration_that_is_no_object_is_a_400(client: httpx2.AsyncClient, body: bytes) -> None:
    answer = await client.post("/admin/v1/runs", content=body, headers=admin_headers())
    assert_refused(answer, 400)


async def test_a_good_registration_with_every_field_is_granted(client: httpx2.AsyncClient) -> None:
    body = {
        "run": "nightly-report.v2",
        "namespace": "default",
        "routePolicy": "route",
        "dataClassification": "public",
        "maxTokens": 10_000,
        "maxCostMicros": 0,
        "ttlSeconds": 600,
    }
    answer = await client.post("/admin/v1/runs", json=body, headers=admin_headers())
    assert answer.status_code == 201, answer.text
    assert answer.json()["run"] == "nightly-report.v2"


@pytest.mark.parametrize(
    ("text", "limit", "depth"),
    [
        ("{}", 64, 1),
        ('{"a": [1, {"b": []}]}', 64, 4),
        ('"[[[["', 64, 0),
        ('["\\"[["]', 64, 1),
        (nested(64), 64, 64),
        (nested(65), 64, 65),
        (nested(50_000), 64, 65),
        ("[" * 50_000, 64, 50_000),
        ("]]][[", 64, 2),
        ("[[]", 64, 2),
        ("", 64, 0),
    ],
)
def test_the_depth_scan_counts_nesting_outside_strings(text: str, limit: int, depth: int) -> None:
    assert json_depth(text, limit) == depth


def test_router_log_lines_escape_control_characters(caplog: pytest.LogCaptureFixture) -> None:
    log = router_logger("jesus.router.core")
    assert router_logger("jesus.router.core").filters.count(log.filters[0]) == 1
    with caplog.at_level(logging.INFO, logger="jesus.router.core"):
        log.info("Model call failed run=%s reason=%s", "r1", "boom\nINFO forged line\r\x1b[2J\u2028end")
        log.info("plain %s", "line")
    forged, plain = (record.getMessage() for record in caplog.records)
    assert "\n" not in forged and "\r" not in forged and "\x1b" not in forged and "\u2028" not in forged
    assert forged == "Model call failed run=r1 reason=boom\\nINFO forged line\\r\\x1b[2J\\u2028end"
    assert plain == "plain line"
    assert escape_controls("tab\there ünïcödé") == "tab\\there ünïcödé"
