"""Fuzzing the router's HTTP endpoints (chat, models, admin register and revoke, healthz, metrics) with
malformed, oversized, deeply nested, wrong-typed and non-UTF-8 input: never a 5xx, always the OpenAI
error shape, and a good request is still served afterwards. Derandomized, so every run is the same."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jesus.router.bodies import InputLimits
from jesus.router.service import build_app

from .test_router_boundary import ADMIN, make_service
from .test_router_service import chat

LIMITS = InputLimits(max_body_bytes=32 * 1024, max_json_depth=64)
FUZZ = settings(
    derandomize=True,
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
FIELDS = (
    "messages", "role", "content", "tools", "tool_calls", "function", "name", "arguments", "parameters",
    "type", "max_tokens", "max_completion_tokens", "stop", "stream", "tool_call_id", "run", "namespace",
    "routePolicy", "dataClassification", "maxTokens", "maxCostMicros", "ttlSeconds",
)  # fmt: skip
# Objects built from the schema's own field names, so the fuzzer reaches past the first type check.
wire_like = st.recursive(
    json_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=6),
    max_leaves=30,
)


def _nested(depth: int, opener: str) -> bytes:
    closer = {"[": "]", "{": "}"}[opener]
    inner = '{"a":' * depth if opener == "{" else "[" * depth
    return (inner + ("1" if opener == "{" else "") + closer * depth).encode()


bodies = st.one_of(
    wire_like.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.builds(_nested, st.integers(60, 20_000), st.sampled_from("[{")),
    st.integers(LIMITS.max_body_bytes - 10, LIMITS.max_body_bytes * 3).map(
        lambda size: b'{"messages":"' + b"x" * size + b'"}'
    ),
    st.sampled_from([b"NaN", b"[Infinity]", b'"\\ud800"', b"1" * 5000, b"\xef\xbb\xbf{}", b"{" * 40_000]),
)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "text/plain",
        "application/json; charset=latin-1",
        "multipart/form-data",
        "\x7f",
    ]
)
authorizations = st.one_of(
    st.sampled_from(["good", "admin", None]),
    st.binary(max_size=60).map(lambda raw: b"Bearer " + raw.replace(b"\r", b"").replace(b"\n", b"")),
    st.text(max_size=30).map(lambda text: f"Bearer {text}".encode("utf-8", "surrogatepass")),
)
ENDPOINTS = [
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/models"),
    ("POST", "/admin/v1/runs"),
    ("DELETE", "/admin/v1/runs"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
]


async def _fuzz_once(
    endpoint: tuple[str, str], body: bytes, content_type: str | None, authorization: Any, query: str
) -> None:
    service = make_service(LIMITS)
    transport = httpx2.ASGITransport(app=build_app(service))
    async with httpx2.AsyncClient(transport=transport, base_url="http://router") as client:
        admin = {"authorization": f"Bearer {ADMIN}"}
        registered = await client.post(
            "/admin/v1/runs", json={"run": "r1", "routePolicy": "route"}, headers=admin
        )
        token = registered.json()["token"]
        headers: dict[str, Any] = {}
        if authorization == "good":
            headers["authorization"] = f"Bearer {token}"
        elif authorization == "admin":
            headers["authorization"] = f"Bearer {ADMIN}"
        elif authorization is not None:
            headers["authorization"] = authorization
        if content_type is not None:
            headers["content-type"] = content_type.encode("latin-1", "replace")
        method, path = endpoint
        answer = await client.request(method, path, content=body, headers=headers, params={"token": query})
        assert answer.status_code < 500, (answer.status_code, answer.text)
        if answer.status_code >= 400:
            assert isinstance(answer.json()["error"]["message"], str)
        good = await client.post(
            "/v1/chat/completions", json=chat(), headers={"authorization": f"Bearer {token}"}
        )
        assert good.status_code == 200, good.text


@FUZZ
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    body=bodies,
    content_type=content_types,
    authorization=authorizations,
    query=st.text(max_size=40),
)
def test_no_input_knocks_the_router_over(
    endpoint: tuple[str, str], body: bytes, content_type: str | None, authorization: Any, query: str
) -> None:
    asyncio.run(_fuzz_once(endpoint, body, content_type, authorization, query))


@FUZZ
@given(value=wire_like, stream=st.booleans())
def test_wrong_typed_chat_bodies_are_4xx_or_served(value: Any, stream: bool) -> None:
    async def once() -> None:
        service = make_service(LIMITS)
        transport = httpx2.ASGITransport(app=build_app(service))
        async with httpx2.AsyncClient(transport=transport, base_url="http://router") as client:
            admin = {"authorization": f"Bearer {ADMIN}"}
            registered = await client.post("/admin/v1/runs", json=value, headers=admin)
            assert registered.status_code in {201, 400, 409}, registered.text
            token = (
                await client.post("/admin/v1/runs", json={"run": "r1", "routePolicy": "route"}, headers=admin)
            ).json()["token"]
            body = value if not isinstance(value, dict) else {**value, "stream": stream}
            answer = await client.post(
                "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {token}"}
            )
            assert answer.status_code in {200, 400}, answer.text

    asyncio.run(once())
